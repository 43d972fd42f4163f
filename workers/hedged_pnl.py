"""PnL of a hosted hedged bot (:mod:`workers.hedged_loop`) over both legs, for its PnL snapshots.

Each leg books its fills in its own :class:`trading.portfolio.Portfolio` (exact integers in that
leg's instrument) and is marked at its own book's mid. The snapshot row is the sum of the two,
in the maker instrument's units (the units :func:`apps.portfolio.services.pnl_snapshots_record`
converts with): position is the net base of both legs, cash / realized / unrealized / fees /
equity the sums, mid the maker's. The hedge leg's figures are converted through Decimal; a
hedge amount finer than the maker's cash unit (or lot) is rounded toward zero (floor for lots).
Peak and drawdown are of the combined equity. No row is written before both legs have a mid. Each account's paper balances are counted once
(a hedge leg on the maker's own account starts from nothing)."""

from __future__ import annotations

from decimal import Decimal

from trading.events import Liquidity, OrderFilled
from trading.portfolio import Portfolio
from workers import records


def _portfolio(setup: records.BotSetup, with_balances: bool) -> Portfolio:
    inst = setup.instrument
    balances = setup.paper_balances if with_balances else {}
    return Portfolio(
        inst,
        initial_base=inst.lots(Decimal(str(balances.get(inst.base, "0"))), round_down=True),
        initial_quote=inst.cash_units(Decimal(str(balances.get(inst.quote, "0")))),
    )


class HedgedPnl:
    """The two legs' portfolios; ``legs`` maps a leg name to its setup (maker first)."""

    def __init__(self, maker: records.BotSetup, hedge: records.BotSetup) -> None:
        self.maker, self.hedge = maker.instrument, hedge.instrument
        self.ports = {
            "maker": _portfolio(maker, True),
            "hedge": _portfolio(hedge, hedge.account_id != maker.account_id),
        }
        self.peak: int | None = None

    def replay(self, leg: str, setup: records.BotSetup) -> None:
        """Book a leg's recorded fills (take-over), oldest first; fees are Decimal there."""
        inst, port = setup.instrument, self.ports[leg]
        for ts, cid, side, price, qty, fee, maker, trade_id in sorted(setup.fills, key=lambda f: f[0]):
            liquidity = Liquidity.MAKER if maker else Liquidity.TAKER
            port.on_fill(OrderFilled(ts, cid, side, price, qty, 0, inst.cash_units(fee), liquidity, trade_id))

    def on_fill(self, leg: str, fill: OrderFilled) -> None:
        self.ports[leg].on_fill(fill)

    def mark(self, leg: str, ts: int, book) -> None:
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            self.ports[leg].mark(ts, bid + ask)

    def _cash(self, units: int) -> int:
        return self.maker.cash_units(self.hedge.cash(units))

    def row(self, ts: int, bot_id: int) -> tuple | None:
        """One row for :func:`apps.portfolio.services.pnl_snapshots_record`; ``None`` until both
        legs have a mid (an equity without the base balances' value would read as a jump)."""
        if any(p.mid2 is None for p in self.ports.values()):
            return None
        m = self.ports["maker"].snapshot(ts)
        h = self.ports["hedge"].snapshot(ts)
        position = m.position + self.maker.lots(self.hedge.quantity(h.position), round_down=True)
        equity = m.equity + self._cash(h.equity)
        if self.peak is None or equity > self.peak:
            self.peak = equity
        return (
            ts,
            bot_id,
            self.maker,
            position,
            m.cash + self._cash(h.cash),
            m.mid,
            m.realized + self._cash(h.realized),
            m.unrealized + self._cash(h.unrealized),
            m.fees + self._cash(h.fees),
            equity,
            self.peak,
            self.peak - equity,
        )
