"""Run every process of the Procfile under supervisord (Supervisor), restarting any that dies.

    python scripts/run_procfile.py [--procfile Procfile] [--state-dir var/supervisor]

The Procfile stays the one list of processes (``name: command``, commands run by ``/bin/sh`` so
``${PORT:-8000}`` works). This script writes ``<state-dir>/supervisord.conf`` from it and
replaces itself with ``supervisord -n`` in the foreground: a process that exits or is killed
is started again (``autorestart``), the others keep running; Ctrl-C or SIGTERM stops them all.
Each process's output goes to ``<state-dir>/log/<name>.log`` (rotated at 10 MB, 3 kept);
supervisord itself prints every start and exit. ``supervisorctl -c <state-dir>/supervisord.conf
status`` lists the processes (``procfile:<name>``) and their pids while it runs. Why Supervisor rather than honcho,
circus or a wrapper of our own: docs/operations.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def read_procfile(path: Path) -> list[tuple[str, str]]:
    """``[(name, command)]`` in file order; blank lines and ``#`` comments are skipped."""
    processes = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line.strip())
        if not match:
            raise SystemExit(f"{path}:{number}: {line!r} is not 'name: command'")
        processes.append((match.group(1), match.group(2)))
    if not processes:
        raise SystemExit(f"{path}: no processes")
    return processes


def _value(text: str) -> str:
    return text.replace("%", "%%")  # supervisord's config expands %(name)s


def supervisord_config(processes: list[tuple[str, str]], state_dir: Path, workdir: Path) -> str:
    log_dir = state_dir / "log"
    lines = [
        "[supervisord]",
        "nodaemon=true",
        f"logfile={_value(str(state_dir / 'supervisord.log'))}",
        "logfile_maxbytes=10MB",
        f"pidfile={_value(str(state_dir / 'supervisord.pid'))}",
        f"childlogdir={_value(str(log_dir))}",
        "",
        "[unix_http_server]",
        f"file={_value(str(state_dir / 'supervisor.sock'))}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_value(str(state_dir / 'supervisor.sock'))}",
        "",
    ]
    # One group: on Ctrl-C supervisord stops a group's processes together (separate programs
    # would be stopped one after another, each allowed its stopwaitsecs).
    lines += ["[group:procfile]", f"programs={','.join(name for name, _command in processes)}", ""]
    for name, command in processes:
        lines += [
            f"[program:{name}]",
            f"command=/bin/sh -c {_value(shlex.quote('exec ' + command))}",
            f"directory={_value(str(workdir))}",
            "autostart=true",
            "autorestart=true",  # whatever the exit code: a dead process is started again
            "startsecs=3",
            "startretries=100",  # failures within startsecs (e.g. the database not up yet), with backoff
            "stopsignal=TERM",
            "stopwaitsecs=20",
            "stopasgroup=true",  # celery's prefork children and the web workers go with their parent
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_value(str(log_dir / (name + '.log')))}",
            "stdout_logfile_maxbytes=10MB",
            "stdout_logfile_backups=3",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--procfile", type=Path, default=ROOT / "Procfile")
    parser.add_argument("--state-dir", type=Path, default=ROOT / "var" / "supervisor")
    args = parser.parse_args(argv)
    state_dir = args.state_dir.resolve()
    (state_dir / "log").mkdir(parents=True, exist_ok=True)
    config = state_dir / "supervisord.conf"
    config.write_text(supervisord_config(read_procfile(args.procfile), state_dir, args.procfile.resolve().parent))
    supervisord = Path(sys.executable).with_name("supervisord")
    print(f"run_procfile: logs in {state_dir / 'log'}/, status: supervisorctl -c {config} status", flush=True)
    os.execv(supervisord, [str(supervisord), "-n", "-c", str(config)])


if __name__ == "__main__":
    main()
