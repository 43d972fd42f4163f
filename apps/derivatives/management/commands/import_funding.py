"""Store a funding-rate series from a CSV file (``time,rate``) for backtests of a perpetual market."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.derivatives.services import FundingImportError, funding_store, parse_funding_csv


class Command(BaseCommand):
    help = "Import a funding-rate CSV (header 'time,rate') for a venue and symbol; refused whole on any bad line."

    def add_arguments(self, parser):
        parser.add_argument("csv", help="path of the CSV file")
        parser.add_argument("--venue", required=True, help="e.g. binanceusdm")
        parser.add_argument("--symbol", required=True, help="e.g. BTC/USDT:USDT")
        parser.add_argument("--max-gap-hours", type=int, default=8)

    def handle(self, *args, **options):
        path = Path(options["csv"])
        if not path.is_file():
            raise CommandError(f"csv: {path} is not a file")
        try:
            points = parse_funding_csv(path.read_bytes(), max_gap_hours=options["max_gap_hours"])
        except (FundingImportError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: {exc}") from None
        count = funding_store(venue=options["venue"], symbol=options["symbol"], points=points)
        self.stdout.write(f"stored {count} funding times for {options['venue']} {options['symbol']}")
