"""Store a perpetual's funding-rate history read from its exchange through ccxt, for backtests."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from apps.derivatives.funding_fetch import fetch_and_store
from apps.derivatives.services import FundingImportError


def _when(name: str, text: str | None):
    if text is None:
        return None
    parsed = parse_datetime(text) if text.isascii() else None
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(f"--{name}: {text!r}; accepted: ISO 8601 with a zone, e.g. 2026-11-01T00:00:00Z")
    return parsed


class Command(BaseCommand):
    help = (
        "Read a perpetual's funding-rate history from its exchange (ccxt fetchFundingRateHistory, public) and "
        "store it as the market's funding series; refused whole on any bad row or gap."
    )

    def add_arguments(self, parser):
        parser.add_argument("--venue", required=True, help="a ccxt exchange id, e.g. binanceusdm")
        parser.add_argument("--symbol", required=True, help="e.g. BTC/USDT:USDT")
        parser.add_argument("--since", required=True, help="ISO 8601 with a zone, e.g. 2026-11-01T00:00:00Z")
        parser.add_argument("--until", help="ISO 8601 with a zone (default: now)")
        parser.add_argument("--max-gap-hours", type=int, default=8)

    def handle(self, *args, **options):
        since, until = _when("since", options["since"]), _when("until", options.get("until"))
        try:
            count = fetch_and_store(venue=options["venue"], symbol=options["symbol"], since=since, until=until,
                                    max_gap_hours=options["max_gap_hours"])  # fmt: skip
        except FundingImportError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"stored {count} funding times for {options['venue']} {options['symbol']} from the exchange")
