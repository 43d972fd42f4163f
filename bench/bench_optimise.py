"""Parameter optimisation through real Celery workers: wall time with one worker process, then
two (``--concurrency 1`` each, the ``backtests`` queue), on the same optimisation.

The optimisation: fixed_spread on the shipped spot recording (``binance-spot-btcusdt``), TPE over
bid and ask spreads, ``--trials`` trials per fold, ``--folds`` walk-forward folds (each fold
optimises on one fifth of the recording and tests on the next), ``parallel=2`` trial tasks per
fold so both runs do the same work — with one worker the second task finds the fold done. The
wall time runs from creating the optimisation (``apps.research.services.optimisation_create``,
which queues it) to its ``finished`` stamp, and includes each worker process reading the
recording once. ``--repeat`` interleaves the two setups (1, 2, 1, 2, ...). Each line also shows
the mean time of one trial and how many ran at once on average (summed trial time / wall time,
from Optuna's own trial stamps): with two workers on a machine whose cores are taken by other
work, trials overlap (about 2 at once) but each takes longer, and the wall time does not drop.

Runs on its own database (``--db``, created and migrated if missing) and its own Redis prefix,
so it never touches a test run's or the portal's data:

    .venv/bin/python -m bench.bench_optimise                 # 100 trials x 4 folds, 1 then 2 workers
    .venv/bin/python -m bench.bench_optimise --trials 10 --folds 2 --repeat 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ensure_database(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def _workers(n: int, env: dict[str, str], log_dir: Path) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        log = (log_dir / f"bench-optimise-worker-{os.getpid()}-{i}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "mmsite",
                    "worker",
                    "--pool",
                    "prefork",
                    "--concurrency",
                    "1",
                    "--queues",
                    "backtests",
                    "--hostname",
                    f"bench-opt-{os.getpid()}-{i}@%h",
                    "--loglevel",
                    "WARNING",
                    "--without-mingle",
                    "--without-gossip",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        )
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _run_once(owner, n_workers: int, args, env: dict[str, str]) -> dict:
    from apps.backtests.models import RunStatus
    from apps.research.services import optimisation_create

    log_dir = ROOT / "var"
    log_dir.mkdir(exist_ok=True)
    procs = _workers(n_workers, env, log_dir)
    try:
        time.sleep(args.worker_start)  # let the workers connect before the clock starts
        load_before = os.getloadavg()
        started = time.monotonic()
        opt = optimisation_create(
            owner=owner,
            data={
                "name": f"bench {n_workers} worker(s)",
                "strategy": "fixed_spread",
                "params": {"order_amount": "0.001", "refresh_time": "0.2"},
                "search_space": {
                    "bid_spread": {"low": "0.00002", "high": "0.0005", "log": True},
                    "ask_spread": {"low": "0.00002", "high": "0.0005", "log": True},
                },
                "objective": "net_pnl",
                "recording": "binance-spot-btcusdt",
                "folds": args.folds,
                "n_trials": args.trials,
                "parallel": 2,
            },
        )
        deadline = started + args.timeout
        while True:
            opt.refresh_from_db()
            if opt.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"optimisation {opt.pk} did not finish in {args.timeout} s ({opt.trials_done} trials)")
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"a worker exited; see {log_dir}/bench-optimise-worker-*.log")
            time.sleep(0.5)
        wall = time.monotonic() - started
        load_after = os.getloadavg()
    finally:
        _stop(procs)
    if opt.status != RunStatus.SUCCEEDED:
        raise SystemExit(f"optimisation {opt.pk} ended {opt.status}: {opt.error}")
    db_wall = (opt.finished - opt.created).total_seconds()
    trials = sum(f.get("trials", 0) for f in opt.results.get("folds", []))
    import optuna

    from apps.research.optimise import storage

    spans = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for fold in range(max(opt.folds, 1))
        for t in optuna.load_study(study_name=opt.study_name(fold), storage=storage()).trials
        if t.datetime_complete is not None
    ]
    return {
        "trial_s": sum(spans) / len(spans),
        "busy": sum(spans) / wall,  # trials running at once, on average
        "workers": n_workers,
        "wall_s": wall,
        "db_wall_s": db_wall,
        "trials": trials or opt.trials_done,
        "load": (load_before[0], load_after[0]),
        "id": opt.pk,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="trials per fold")
    parser.add_argument("--folds", type=int, default=4, help="walk-forward folds")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds of (1 worker, 2 workers)")
    parser.add_argument("--db", default="mm_bench_optimise", help="PostgreSQL database (created if missing)")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--worker-start", type=float, default=5.0, help="seconds the workers get to connect")
    args = parser.parse_args()

    _ensure_database(args.db)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.test")
    os.environ["REDIS_PREFIX"] = f"mmbench-opt-{os.getpid()}"
    os.environ["PYTHONUNBUFFERED"] = "1"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.research.optimise import dispose_storage, storage

    storage()  # Optuna creates its tables on first use: not inside the first timed run
    dispose_storage()
    owner, _ = get_user_model().objects.get_or_create(username="bench-optimise", defaults={"role": "trader"})
    env = dict(os.environ)

    print(
        f"optimisation: fixed_spread on binance-spot-btcusdt, {args.trials} trials x {args.folds} folds "
        f"(TPE, 2 parameters), {os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.2f}"
    )
    results = []
    for _ in range(args.repeat):
        for n in (1, 2):
            r = _run_once(owner, n, args, env)
            results.append(r)
            print(
                f"  {n} worker process(es): {r['wall_s']:.1f} s wall ({r['db_wall_s']:.1f} s created->finished), "
                f"{r['trials']} trials of {r['trial_s']:.3f} s on average, {r['busy']:.2f} running at once, load average {r['load'][0]:.2f} -> {r['load'][1]:.2f} (optimisation {r['id']})",
                flush=True,
            )
    one = min(r["wall_s"] for r in results if r["workers"] == 1)
    two = min(r["wall_s"] for r in results if r["workers"] == 2)
    print(
        f"best of {args.repeat}: 1 worker {one:.1f} s, 2 workers {two:.1f} s, speed-up {one / two:.2f}x (ideal 2.00x)"
    )
    print(f"reproduce: .venv/bin/python -m bench.bench_optimise --trials {args.trials} --folds {args.folds}")


if __name__ == "__main__":
    main()
