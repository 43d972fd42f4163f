"""The hedged PnL and leg configuration with perpetual legs (:mod:`workers.hedged_pnl`,
:mod:`workers.hedged_legs`), without a host: perp-to-perp over two accounts (hosted:
``tests/workers/test_hedged_perp_perp.py``), and the contract checks of the legs' setups."""

from __future__ import annotations

from fractions import Fraction

import pytest

from connectors.binance_recording import RECORDINGS
from tests.workers.helpers import contract_fields
from trading.events import Liquidity, OrderFilled
from trading.instruments import Instrument, Side
from workers import hedged_legs, records
from workers.hedged_pnl import HedgedPnl

USDM = "replay:binance-usdm"
PERP = "BTC/USDT:USDT"
EIGHT_H = 8 * 3600 * 1_000_000_000


def _perp_setup(account_id: int, settings: dict, wallet: str = "1000") -> records.BotSetup:
    rec = RECORDINGS["binance-usdm-btcusdt"]
    inst = Instrument.create(symbol=PERP, base="BTC", quote="USDT", tick_size="0.1", lot_size="0.001",
                             maker_fee="0.0002", taker_fee="0.0005", venue=USDM)  # fmt: skip
    setup = records.BotSetup(
        bot_id=1, owner_id=1, name="pp", account_id=account_id, account_kind="paper", venue=USDM, market_id=1,
        symbol=PERP, instrument=inst, strategy="hedged_maker", params={}, risk={"perp": settings},
        desired_state="running", prefix="mm1m", client_id_start=0, paper_balances={"USDT": wallet},
        kill_switch=False,
    )  # fmt: skip
    setup.contract = rec.contract
    return setup


class _Book:
    def __init__(self, bid: int, ask: int) -> None:
        self.bid, self.ask = bid, ask

    def best_bid(self) -> int:
        return self.bid

    def best_ask(self) -> int:
        return self.ask


def test_perp_to_perp_pnl_sums_both_legs_positions_fees_and_funding_exactly(settings):
    maker = _perp_setup(1, {"leverage": 10, "funding_rate": "0.0001"})
    hedge = _perp_setup(2, {"leverage": 5, "funding_rate": "0.0001"}, wallet="500")
    legs, config, errors = hedged_legs.configure(maker, hedge, {"order_amount": "0.002", "min_profitability": "0.0007",
                                                                "requote_ticks": 3})  # fmt: skip
    assert errors == {} and config.requote_ticks == 3 and config.order_lots == 2
    assert legs.maker.contract.is_perpetual and legs.hedge.contract.is_perpetual
    perps = {"maker": hedged_legs.perp_risk_of(maker), "hedge": hedged_legs.perp_risk_of(hedge)}
    pnl = HedgedPnl(maker, hedge, perps)
    assert pnl.exact
    t0 = EIGHT_H * 100_000 - 1_000_000_000  # a second before a funding time
    pnl.mark("maker", t0, _Book(599_990, 600_010))
    pnl.mark("hedge", t0, _Book(600_090, 600_110))
    # maker buys 2 lots (0.002 BTC) at 59 999.0 as maker; the hedge sells 2 at 60 009.0 as taker
    pnl.on_fill("maker", OrderFilled(t0, "mm1m-0", Side.BUY, 599_990, 2, 0, 0, Liquidity.MAKER, "a"))
    pnl.on_fill("hedge", OrderFilled(t0, "mm1h-0", Side.SELL, 600_090, 2, 0, 0, Liquidity.TAKER, "b"))
    row = pnl.row(t0, 1)
    _ts, _bot, position, cash, mid, _realized, unrealized, fees, equity, _peak, _drawdown, funding = row
    fee_maker = Fraction("0.002") * Fraction("59999.0") * Fraction("0.0002")
    fee_hedge = Fraction("0.002") * Fraction("60009.0") * Fraction("0.0005")
    assert position == 0 and mid == Fraction("60000.0") and funding == 0
    assert fees == fee_maker + fee_hedge
    # each leg at its own mark: maker +0.002 x (60000.0 - 59999.0), hedge -0.002 x (60010.0 - 60009.0)
    assert unrealized == Fraction("0.002") * 1 - Fraction("0.002") * 1
    assert cash == 1500 - fees and equity == cash + unrealized
    # the funding time passes: the long maker pays, the short hedge receives (each at its mark)
    pnl.mark("maker", t0 + 2_000_000_000, _Book(599_990, 600_010))
    pnl.mark("hedge", t0 + 2_000_000_000, _Book(600_090, 600_110))
    paid = pnl.take_funding()
    assert sorted(leg for leg, _ in paid) == ["hedge", "maker"]
    amounts = {leg: entry[3] for leg, entry in paid}
    assert amounts["maker"] == -Fraction("0.002") * Fraction("60000.0") * Fraction("0.0001")
    assert amounts["hedge"] == Fraction("0.002") * Fraction("60010.0") * Fraction("0.0001")
    row = pnl.row(t0 + 2_000_000_000, 1)
    assert row[-1] == amounts["maker"] + amounts["hedge"]  # the funding column: both legs
    assert pnl.take_funding() == []


def test_an_amount_off_the_contract_lot_is_refused_on_a_live_perpetual_leg_too(settings):
    maker = _perp_setup(1, {})
    hedge = _perp_setup(2, {})
    hedge.account_kind = "live"  # a live perpetual leg (workers.hedged_live_perp) is accepted
    _legs, config, errors = hedged_legs.configure(maker, hedge, {"order_amount": "0.0025", "min_profitability": "0.0007",
                                                                 "requote_ticks": 0})  # fmt: skip
    assert config is None and "hedge_account" not in errors and "maker_account" not in errors
    assert "'0.0025' is not a multiple of the lot size 0.001" in errors["order_amount"]
    _legs, config, errors = hedged_legs.configure(maker, hedge, {"order_amount": "0.002", "min_profitability": "0.0007",
                                                                 "requote_ticks": 0})  # fmt: skip
    assert errors == {} and config.order_lots == 2


def test_the_maker_legs_position_limit_defaults_to_the_bots_max_position_base(settings):
    """A hedged bot's maker leg is bounded by ``max_position``, else by the bot's risk
    ``max_position_base`` (rounded down to whole lots); one below a quote is refused by name."""
    hedge = _perp_setup(2, {})
    base = {"order_amount": "0.002", "min_profitability": "0.0007", "requote_ticks": 0}
    maker = _perp_setup(1, {})
    maker.risk = {"perp": {}, "max_position_base": "0.0105"}
    _legs, config, errors = hedged_legs.configure(maker, hedge, base)
    assert errors == {} and config.max_maker_base == Fraction(1, 100)  # 0.0105 -> 10 lots of 0.001
    _legs, config, errors = hedged_legs.configure(maker, hedge, {**base, "max_position": "0.004"})
    assert errors == {} and config.max_maker_base == Fraction(4, 1000)  # the bot's own setting first
    maker.risk = {"perp": {}, "max_position_base": "0.001"}
    _legs, config, errors = hedged_legs.configure(maker, hedge, base)
    assert config is None and errors["risk.max_position_base"].startswith("'0.001' is below the order amount 0.002")
    maker.risk = {"perp": {}}
    _legs, config, errors = hedged_legs.configure(maker, hedge, base)
    assert errors == {} and config.max_maker_base is None


@pytest.mark.django_db
def test_a_perp_leg_without_a_settle_balance_is_refused_by_name():
    from trading.config import ConfigError

    setup = _perp_setup(1, {"leverage": 10})
    setup.paper_balances = {"BTC": "1"}
    with pytest.raises(ConfigError) as refused:
        hedged_legs.perp_risk_of(setup)
    assert "give the paper account a USDT balance above 0" in refused.value.errors["paper_balances.USDT"]


@pytest.mark.django_db
def test_a_new_owner_loads_the_perp_leg_settings_and_the_funding_it_booked():
    """Take-over: the hedge leg's ``hedge_perp`` settings become its ``risk["perp"]``, and the
    funding it booked under earlier owners (its ``funding`` bot events) is on its position."""
    from apps.accounts.models import User
    from apps.bots.models import BotEvent
    from apps.bots.services import bot_create
    from apps.exchanges.models import Market
    from apps.exchanges.services import exchange_account_create
    from workers import hedged_records

    user = User.objects.create_user(username="perpowner", password="pw-12345678")
    spot, _ = Market.objects.update_or_create(
        venue="replay:binance-spot", symbol="BTC/USDT",
        defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.01", "lot_size": "0.00001", "maker_fee": "0",
                  "taker_fee": "0"},
    )  # fmt: skip
    perp, _ = Market.objects.update_or_create(
        venue=USDM, symbol=PERP,
        defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.1", "lot_size": "0.001", "maker_fee": "0",
                  "taker_fee": "0.0005", **contract_fields(USDM, PERP)},
    )  # fmt: skip
    spot.refresh_from_db()
    perp.refresh_from_db()
    maker = exchange_account_create(owner=user, label="spot", venue="replay:binance-spot",
                                    paper_balances={"USDT": "1000"})  # fmt: skip
    hedge = exchange_account_create(owner=user, label="usdm", venue=USDM, paper_balances={"USDT": "1000"})
    bot = bot_create(
        owner=user, name="sp", exchange_account=maker, market=spot, strategy="hedged_maker",
        params={"hedge_account": hedge.pk, "hedge_market": perp.pk, "order_amount": "0.001",
                "min_profitability": "0.0005", "hedge_perp": {"leverage": 3}},
        risk={"max_position_base": "1"},
    )  # fmt: skip
    from django.utils import timezone

    for leg, amount in (("hedge", "-0.25"), ("hedge", "0.05"), ("maker", "9")):
        BotEvent.objects.create(bot=bot, ts=timezone.now(), kind="funding", code="funding_paid",
                                data={"leg": leg, "amount": amount})  # fmt: skip
    maker_setup, hedge_setup, settings = hedged_records.hedged_setup(bot.pk)
    assert maker_setup.contract is None and hedge_setup.contract.is_perpetual
    assert hedge_setup.risk == {"perp": {"leverage": 3}} and "hedge_perp" not in settings
    assert hedge_setup.perp_funding_booked == Fraction("-0.2")
    risk = hedged_legs.perp_risk_of(hedge_setup)
    assert risk.leverage == 3 and risk.position.funding == Fraction("-0.2") and risk.wallet == 1000
    assert hedged_legs.perp_risk_of(maker_setup) is None


@pytest.mark.django_db
def test_a_perp_maker_leg_loaded_from_the_database_is_bounded_by_the_bots_max_position_base():
    """Through the hosted setup (``hedged_records.hedged_setup``): a perpetual maker leg keeps the
    bot's ``risk.max_position_base`` beside its ``maker_perp`` settings, so the maker leg is
    bounded by it; the hedge leg carries only its own perpetual settings (no spot limit of the
    bot may refuse a hedge)."""
    from apps.accounts.models import User
    from apps.bots.services import bot_create
    from apps.exchanges.models import Market
    from apps.exchanges.services import exchange_account_create
    from workers import hedged_records

    user = User.objects.create_user(username="perpcap", password="pw-12345678")
    markets = []
    for venue in ("sim:gamma", "sim:delta"):
        market, _ = Market.objects.update_or_create(
            venue=venue, symbol=PERP,
            defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.1", "lot_size": "0.001", "maker_fee": "0.0002",
                      "taker_fee": "0.0005", "kind": "linear", "contract_size": "1", "settle": "USDT",
                      "max_leverage": 50},
        )  # fmt: skip
        market.refresh_from_db()
        markets.append(market)
    maker = exchange_account_create(owner=user, label="gamma", venue="sim:gamma", paper_balances={"USDT": "100000"})
    hedge = exchange_account_create(owner=user, label="delta", venue="sim:delta", paper_balances={"USDT": "100000"})
    bot = bot_create(
        owner=user, name="pp cap", exchange_account=maker, market=markets[0], strategy="hedged_maker",
        params={"hedge_account": hedge.pk, "hedge_market": markets[1].pk, "order_amount": "0.002",
                "min_profitability": "0.0008", "max_unhedged": "0.004",
                "maker_perp": {"leverage": 5, "margin_mode": "isolated"},
                "hedge_perp": {"leverage": 5, "margin_mode": "isolated"}},
        risk={"max_position_base": "0.5"},
    )  # fmt: skip
    maker_setup, hedge_setup, settings = hedged_records.hedged_setup(bot.pk)
    assert maker_setup.risk["max_position_base"] == "0.5"
    assert maker_setup.risk["perp"] == {"leverage": 5, "margin_mode": "isolated"}
    assert hedge_setup.risk == {"perp": {"leverage": 5, "margin_mode": "isolated"}}
    _legs, config, errors = hedged_legs.configure(maker_setup, hedge_setup, settings)
    assert errors == {} and config.max_maker_base == Fraction(1, 2)
    assert hedged_legs.perp_risk_of(maker_setup).leverage == 5
