from django.core.management.base import BaseCommand
from django.db import transaction

from apps.accounts.models import Role, User
from apps.accounts.services import user_create

DEMO_USERS = (
    ("demo", "demo-trader-2026", Role.TRADER, "demo@example.com"),
    ("ops", "ops-operator-2026", Role.OPERATOR, "ops@example.com"),
)
# label, venue, balances, account type (ccxt defaultType: spot, or swap for derivatives)
DEMO_ACCOUNTS = (
    ("Paper Binance replay", "replay:binance-spot", {"BTC": "1", "USDT": "100000"}, "spot"),
    ("Paper sim alpha", "sim:alpha", {"BTC": "1", "USDT": "100000"}, "spot"),
    ("Paper sim beta", "sim:beta", {"BTC": "1", "USDT": "100000"}, "spot"),
    # derivatives accounts: a perpetual's margin is the account's USDT (docs/perpetuals.md)
    ("Paper Binance USD-M replay", "replay:binance-usdm", {"USDT": "100000"}, "swap"),
    ("Paper sim gamma perps", "sim:gamma", {"USDT": "100000"}, "swap"),
    ("Paper sim delta perps", "sim:delta", {"USDT": "100000"}, "swap"),
)
DEMO_RISK = {"daily_loss_limit": "2000", "max_drawdown": "3000", "max_position_base": "0.5"}
# A perpetual bot's own settings (risk.perp): leverage and margin mode of its position.
DEMO_PERP = {"leverage": 5, "margin_mode": "isolated"}
# name, account label, symbol, strategy, params, risk
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
        DEMO_RISK,
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
        DEMO_RISK,
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
        DEMO_RISK,
    ),
    (
        # a perpetual on the recorded Binance USD-M market: quotes in contracts of 1 BTC, margin,
        # liquidation distance and funding on its page
        "BTC-PERP replay Avellaneda-Stoikov",
        "Paper Binance USD-M replay",
        "BTC/USDT:USDT",
        "avellaneda_stoikov",
        {"order_amount": "0.01", "risk_aversion": "1", "horizon": "600"},
        {**DEMO_RISK, "perp": DEMO_PERP},
    ),
)
# Hedged makers (docs/hedging.md): quotes on one venue priced from the other's book, each maker
# fill hedged on the other. name, maker account label, hedge account label, symbol, settings.
DEMO_HEDGED = (
    (
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
    ),
    (
        # perp-to-perp: each leg its own position, margin (its account's USDT at its leverage) and
        # funding; the legs' pre-trade margin check refuses what a leg's margin cannot carry
        "BTC-PERP hedged gamma/delta",
        "Paper sim gamma perps",
        "Paper sim delta perps",
        "BTC/USDT:USDT",
        {
            "order_amount": "0.002",
            "min_profitability": "0.0008",
            "hedge_mode": "ioc",
            "max_unhedged": "0.004",
            "requote_ticks": 20,
            "maker_perp": DEMO_PERP,
            "hedge_perp": DEMO_PERP,
        },
    ),
)


class Command(BaseCommand):
    help = (
        "Create the demo users, paper accounts (spot and derivatives) and running paper bots: spot, a "
        "perpetual, a spot hedged maker and a perp-to-perp one (idempotent)."
    )

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
        for label, venue, balances, default_type in DEMO_ACCOUNTS:
            account = ExchangeAccount.objects.filter(owner=demo, label=label).first()
            if account is None:
                account = exchange_account_create(
                    owner=demo, label=label, venue=venue, paper_balances=balances, default_type=default_type
                )
                self.stdout.write(f"created paper account {label} on {venue} ({default_type})")
            accounts[label] = account
        bots = [*DEMO_BOTS]
        for name, maker_label, hedge_label, symbol, settings in DEMO_HEDGED:
            hedge = accounts[hedge_label]
            hedge_market = Market.objects.get(venue=hedge.venue, symbol=symbol)
            params = {"hedge_account": hedge.pk, "hedge_market": hedge_market.pk, **settings}
            bots.append((name, maker_label, symbol, "hedged_maker", params, DEMO_RISK))
        for name, label, symbol, strategy, params, risk in bots:
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
                    risk=risk,
                )
                self.stdout.write(f"created bot {name}")
            if bot.desired_state == DesiredState.STOPPED and not account.kill_switch:
                bot_start(bot=bot, actor=demo)
                self.stdout.write(f"bot {name} set to run")
