from django.core.management.base import BaseCommand
from django.db import transaction

from apps.accounts.models import Role, User
from apps.accounts.services import user_create

DEMO_USERS = (
    ("demo", "demo-trader-2026", Role.TRADER, "demo@example.com"),
    ("ops", "ops-operator-2026", Role.OPERATOR, "ops@example.com"),
)
# label, venue, balances
DEMO_ACCOUNTS = (
    ("Paper Binance replay", "replay:binance-spot", {"BTC": "1", "USDT": "100000"}),
    ("Paper sim alpha", "sim:alpha", {"BTC": "1", "USDT": "100000"}),
    ("Paper sim beta", "sim:beta", {"BTC": "1", "USDT": "100000"}),
)
# name, account label, symbol, strategy, params
DEMO_BOTS = (
    (
        "BTC replay fixed spread",
        "Paper Binance replay",
        "BTC/USDT",
        "fixed_spread",
        {
            "order_amount": "0.001",
            "bid_spread": "0.0001",
            "ask_spread": "0.0001",
            "order_levels": 2,
            "refresh_tolerance": "0.00005",
        },
    ),
    (
        "BTC sim alpha",
        "Paper sim alpha",
        "BTC/USDT",
        "fixed_spread",
        {
            "order_amount": "0.01",
            "bid_spread": "0.0001",
            "ask_spread": "0.0001",
            "order_levels": 2,
            "refresh_tolerance": "0.0001",
        },
    ),
    (
        "BTC sim beta",
        "Paper sim beta",
        "BTC/USDT",
        "fixed_spread",
        {
            "order_amount": "0.01",
            "bid_spread": "0.0001",
            "ask_spread": "0.0001",
            "order_levels": 2,
            "refresh_tolerance": "0.0001",
        },
    ),
)
DEMO_RISK = {"daily_loss_limit": "2000", "max_drawdown": "3000", "max_position_base": "0.5"}
# A hedged maker (docs/hedging.md): quotes on sim alpha priced from sim beta's book, each maker fill
# hedged on sim beta. name, maker account label, hedge account label, symbol, hedger settings.
DEMO_HEDGED = (
    "BTC hedged alpha/beta",
    "Paper sim alpha",
    "Paper sim beta",
    "BTC/USDT",
    {
        "order_amount": "0.002",
        "min_profitability": "0.0008",
        "hedge_mode": "ioc",
        "max_unhedged": "0.006",
        "requote_ticks": 20,
    },
)


class Command(BaseCommand):
    help = "Create the demo users, paper accounts and running paper bots (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--no-bots", action="store_true", help="only the users")

    @transaction.atomic
    def handle(self, *args, **options):
        for username, password, role, email in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            user_create(username=username, password=password, role=role, email=email, check_password=False)
            self.stdout.write(f"created demo user {username} ({role})")
        if not options.get("no_bots"):
            self._paper_bots(User.objects.get(username="demo"))
        self.stdout.write("demo data ready")

    def _paper_bots(self, demo: User) -> None:
        from apps.bots.models import Bot, DesiredState
        from apps.bots.services import bot_create, bot_start
        from apps.exchanges.models import ExchangeAccount, Market
        from apps.exchanges.services import exchange_account_create

        accounts = {}
        for label, venue, balances in DEMO_ACCOUNTS:
            account = ExchangeAccount.objects.filter(owner=demo, label=label).first()
            if account is None:
                account = exchange_account_create(owner=demo, label=label, venue=venue, paper_balances=balances)
                self.stdout.write(f"created paper account {label} on {venue}")
            accounts[label] = account
        name, maker_label, hedge_label, symbol, settings = DEMO_HEDGED
        hedge = accounts[hedge_label]
        hedge_market = Market.objects.get(venue=hedge.venue, symbol=symbol)
        bots = [*DEMO_BOTS]
        bots.append(
            (
                name,
                maker_label,
                symbol,
                "hedged_maker",
                {"hedge_account": hedge.pk, "hedge_market": hedge_market.pk, **settings},
            )
        )
        for name, label, symbol, strategy, params in bots:
            account = accounts[label]
            bot = Bot.objects.filter(owner=demo, name=name).first()
            if bot is None:
                market = Market.objects.get(venue=account.venue, symbol=symbol)
                bot = bot_create(
                    owner=demo,
                    name=name,
                    exchange_account=account,
                    market=market,
                    strategy=strategy,
                    params=params,
                    risk=DEMO_RISK,
                )
                self.stdout.write(f"created bot {name}")
            if bot.desired_state == DesiredState.STOPPED and not account.kill_switch:
                bot_start(bot=bot, actor=demo)
                self.stdout.write(f"bot {name} set to run")
