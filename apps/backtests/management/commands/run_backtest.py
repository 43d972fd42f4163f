"""``manage.py run_backtest``: run a backtest from the shell with a progress bar and print the
metrics table. With ``--owner`` the run is also stored (like one queued from the web)."""

from __future__ import annotations

import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from apps.backtests.models import DataSource
from apps.backtests.validation import validate_backtest_input


def _json(value: str, name: str) -> dict:
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--{name}: {value!r} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CommandError(f"--{name}: {value!r} is not accepted; give a JSON object")
    return data


class Command(BaseCommand):
    help = "Run a backtest with a progress bar and print its metrics."

    def add_arguments(self, parser):
        parser.add_argument("--strategy", default="fixed_spread")
        parser.add_argument("--params", default='{"order_amount": "0.001"}', help="strategy parameters (JSON)")
        parser.add_argument("--risk", default="{}", help="risk limits (JSON)")
        parser.add_argument("--source", default=DataSource.RECORDING, choices=DataSource.values)
        parser.add_argument(
            "--data",
            default='{"recording": "binance-spot-btcusdt", "max_events": 200000}',
            help="data-source parameters (JSON)",
        )
        parser.add_argument("--owner", help="username: store the run under this user")
        parser.add_argument("--name", default="shell backtest")

    def handle(self, *args, **options):
        params = _json(options["params"], "params")
        risk = _json(options["risk"], "risk")
        data = _json(options["data"], "data")
        owner = None
        if options["owner"]:
            from apps.accounts.models import User

            owner = User.objects.filter(username=options["owner"]).first()
        errors = validate_backtest_input(
            strategy=options["strategy"],
            params=params,
            risk=risk,
            data_source=options["source"],
            data_params=data,
            owner=owner,
        )
        if errors:
            raise CommandError(json.dumps(errors, indent=2))
        if options["owner"]:
            return self._stored(options, params, risk, data)
        from apps.backtests import runner

        started = time.monotonic()
        if options["source"] == DataSource.HEDGED_RECORDINGS:
            return self._hedged(data, started)
        prepared = runner.prepare_source(options["source"], data)
        bar = _Bar(self.stderr, prepared.total, started)
        result, engine, bt = runner.simulate(
            strategy=options["strategy"], params=params, risk=risk, prepared=prepared, should_stop=bar.update
        )
        bar.done()
        payload = runner.result_payload(result, engine, bt, prepared)
        self._table(payload["metrics"], time.monotonic() - started)

    def _stored(self, options, params, risk, data):
        from unittest import mock

        from apps.accounts.models import User
        from apps.backtests import runner
        from apps.backtests.services import backtest_create

        owner = User.objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"--owner: {options['owner']!r} is not a user")
        with mock.patch("apps.backtests.services.transaction.on_commit"):  # run here, not on a worker
            run = backtest_create(
                owner=owner,
                name=options["name"],
                strategy=options["strategy"],
                params=params,
                risk=risk,
                data_source=options["source"],
                data_params=data,
            )
        started = time.monotonic()
        finished = runner.backtest_execute(run_id=run.pk)
        if finished.status != "succeeded":
            raise CommandError(f"run {run.pk} {finished.status}: {finished.error}")
        table = self._hedged_table if "hedged" in finished.metrics else self._table
        table(finished.metrics, time.monotonic() - started)
        self.stdout.write(f"stored as run {run.pk}")

    def _hedged(self, data: dict, started: float) -> None:
        from apps.backtests import hedged

        bar = _Bar(self.stderr, 2 * data["max_events"] if data.get("max_events") else None, started)
        result, legs = hedged.run(data, bar.update)
        bar.done()
        metrics = hedged.payload(result, legs, data)["metrics"]
        self._hedged_table(metrics, time.monotonic() - started)

    def _hedged_table(self, metrics: dict, seconds: float) -> None:
        h = metrics["hedged"]
        rows = [
            ("events (both venues)", metrics["events"]),
            ("simulated time (s)", f"{metrics['duration_s']:.1f}"),
            ("maker venue", h["maker"]),
            ("hedge venue", h["hedge"]),
            ("total PnL", metrics["total_pnl"]),
            *[(f"  {k}", h[k]) for k in ("maker_pnl", "hedge_pnl", "funding", "maker_fees", "hedge_fees")],
            *[
                (f"{leg} perp margin used max / liquidation", f"{p['max_margin_used']} / {p['liquidation_price']}")
                for leg, p in ((leg, h.get(f"{leg}_perp")) for leg in ("maker", "hedge"))
                if p
            ],
            *[(f"{leg} perp orders refused (margin check)", n) for leg, n in (h.get("margin_refused") or {}).items()],
            ("maker fills / hedge fills", f"{h['maker_fills']} / {h['hedge_fills']}"),
            ("exposure max / limit", f"{h['exposure_max']} / {h['exposure_limit']}"),
            ("exposure time-weighted", h["exposure_time_weighted"]),
            ("exposure final", h["exposure_final"]),
            ("longest unhedged (ms)", h["longest_unhedged_ms"]),
            *[
                (f"{name} median / max", f"{_fmt(d['median'])} / {_fmt(d['max'])} (n={d['count']})")
                for name, d in h["attribution"].items()
            ],
            *[
                (
                    f"{q['venue']} perp liquidated",
                    f"{q['ts_ms']} ms: closed at {q['bankruptcy_price']} ({q['pnl']}), "
                    f"exposure left {q['exposure_left']}",
                )
                for q in h.get("liquidations") or ()
            ],
            ("quoting stopped", h["halted"] or "no"),
            ("notes", len(h["notes"])),
            ("wall time (s)", f"{seconds:.2f}"),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            self.stdout.write(f"{key:<{width}}  {value}")
        for note in h["notes"][:20]:
            self.stdout.write(f"  {note['ts_ms']} {note['code']}: {note['message']}")

    def _table(self, metrics: dict, seconds: float) -> None:
        quality = metrics.get("quality", {})
        rows = [
            ("events", metrics["events"]),
            ("simulated time (s)", f"{metrics['duration_s']:.1f}"),
            ("total PnL", metrics["total_pnl"]),
            ("  spread capture", quality.get("pnl", {}).get("spread_capture")),
            ("  inventory PnL", quality.get("pnl", {}).get("inventory_pnl")),
            ("  fees", quality.get("pnl", {}).get("fees")),
            ("Sharpe (annualised)", "n/a" if metrics["sharpe"] is None else f"{metrics['sharpe']:.2f}"),
            ("max drawdown", metrics["max_drawdown"]),
            ("fills", metrics["fills"]),
            ("filled quantity", metrics["filled_qty"]),
            ("orders placed", metrics["orders_placed"]),
            ("order-to-trade", _fmt(quality.get("order_to_trade"))),
            ("quote uptime", _pct(quality.get("quote_uptime"))),
            ("time at top of book", _pct(quality.get("time_at_top"))),
            ("avg quoted spread (bps)", _fmt(quality.get("avg_quoted_spread_bps"))),
            *[
                (f"markout {h} (per unit)", m["per_unit"] if m["per_unit"] is not None else "n/a")
                for h, m in quality.get("markouts", {}).items()
            ],
            ("final position", metrics["final_position"]),
            ("wall time (s)", f"{seconds:.2f}"),
        ]
        perp = metrics.get("perp")
        if perp:
            settle = perp["settle"]
            rows += [
                (f"perpetual ({perp['kind']}, {perp['margin_mode']}, {perp['leverage']}x)", f"settles in {settle}"),
                *[
                    (f"  {key}", f"{perp[key]} {settle}" if perp[key] is not None else "n/a")
                    for key in ("wallet", "realized", "unrealized", "funding", "fees", "net_pnl", "margin_used")
                ],
                ("  position (contracts)", perp["position_contracts"]),
                ("  entry / mark", f"{perp['entry_price']} / {perp['mark_price']}"),
                ("  liquidation_price", perp["liquidation_price"] or "none"),
                ("  closest to liquidation", _pct(perp["min_liquidation_distance"])),
                ("  liquidated at", perp["liquidated_at"] or "no"),
                *[
                    (
                        f"  liquidation ({q['leg']})",
                        f"{q['ts']}: mark {q['mark']}, closed at {q['bankruptcy_price']}, {q['pnl']} {settle}",
                    )
                    for q in perp.get("liquidations") or ()
                ],
            ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            self.stdout.write(f"{key:<{width}}  {value}")
        if "monte_carlo" in metrics:
            self.stdout.write("Avellaneda-Stoikov Monte Carlo: " + json.dumps(metrics["monte_carlo"]))


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _pct(value) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


class _Bar:
    """A one-line progress bar with ETA on stderr."""

    def __init__(self, stream, total: int | None, started: float) -> None:
        self.stream, self.total, self.started = stream, total, started

    def update(self, seen: int) -> bool:
        if self.total:
            fraction = min(seen / self.total, 1.0)
            elapsed = time.monotonic() - self.started
            eta = elapsed / fraction * (1 - fraction) if fraction else 0
            filled = int(fraction * 30)
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f} % ETA {eta:5.1f} s", ending=""
            )
        else:
            self.stream.write(f"\r{seen} events", ending="")
        self.stream.flush() if hasattr(self.stream, "flush") else None
        return False

    def done(self) -> None:
        self.update(self.total or 0)
        self.stream.write("")
        sys.stderr.flush()
