"""PnL of a hosted hedged bot (:mod:`workers.hedged_loop`) over both legs, for its PnL snapshots.

Two spot legs: each leg books its fills in its own :class:`trading.portfolio.Portfolio` (exact
integers in that leg's instrument) and is marked at its own book's mid. The snapshot row is the
sum of the two, in the maker instrument's units (the units
:func:`apps.portfolio.services.pnl_snapshots_record` converts with): position is the net base of
both legs, cash / realized / unrealized / fees / equity the sums, mid the maker's. The hedge
leg's figures are converted through Decimal; a hedge amount finer than the maker's cash unit (or
lot) is rounded toward zero (floor for lots).

A perpetual leg (spot-to-perp, perp-to-perp) books its fills in its
:class:`~trading.perp_risk.PerpRisk` instead (the single-venue perpetual bot's: contracts, fees
at the leg's rates, funding at the funding times of its schedule, marked at its book's mid), and
the row is then exact fractions through
:func:`apps.portfolio.services.perp_snapshots_record`, with the funding column: position = the
net base of both legs (contracts x contract size), a perpetual leg's cash = its wallet + realized
+ funding - fees and its equity that plus the unrealized PnL at the mark, mid = the maker's.
Funding booked since the last row is handed out by :meth:`HedgedPnl.take_funding` (the loop
records each payment as a bot event naming its leg; a new owner sums them back).

Peak and drawdown are of the combined equity. No row is written before both legs have a mid.
Each account's paper balances (a perpetual's wallet) are counted once (a hedge leg on the maker's
own account starts from nothing)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from trading.events import Liquidity, OrderFilled
from trading.perp_risk import PerpRisk
from trading.portfolio import Portfolio
from trading.risk import NORMAL
from workers import records
from workers.hedged_liquidation import replay_close


def _portfolio(setup: records.BotSetup, with_balances: bool) -> Portfolio:
    inst = setup.instrument
    balances = setup.paper_balances if with_balances else {}
    return Portfolio(
        inst,
        initial_base=inst.lots(Decimal(str(balances.get(inst.base, "0"))), round_down=True),
        initial_quote=inst.cash_units(Decimal(str(balances.get(inst.quote, "0")))),
    )


class HedgedPnl:
    """The two legs' books: a Portfolio per spot leg, the PerpRisk of each perpetual leg."""

    def __init__(
        self, maker: records.BotSetup, hedge: records.BotSetup, perps: dict[str, PerpRisk | None] | None = None
    ) -> None:
        self.maker, self.hedge = maker.instrument, hedge.instrument
        self.setups = {"maker": maker, "hedge": hedge}
        self.perps: dict[str, PerpRisk] = {k: v for k, v in (perps or {}).items() if v is not None}
        self.counted = {"maker": True, "hedge": hedge.account_id != maker.account_id}
        self.ports = {
            name: _portfolio(setup, self.counted[name]) for name, setup in self.setups.items() if name not in self.perps
        }
        self.peak: int | Fraction | None = None

    @property
    def exact(self) -> bool:
        """Rows as exact fractions (:func:`perp_snapshots_record`): a leg is a perpetual."""
        return bool(self.perps)

    def replay(self, leg: str, setup: records.BotSetup) -> None:
        """Book a leg's recorded fills (take-over), oldest first; fees are Decimal there. A
        liquidation row of a perpetual leg closes its position with the row's loss
        (:func:`workers.hedged_liquidation.replay_close`)."""
        inst = setup.instrument
        book = self.perps.get(leg) or self.ports[leg]
        closes = getattr(setup, "liquidation_closes", None) or {}  # trade id -> loss (a perpetual leg's)
        for ts, cid, side, price, qty, fee, maker, trade_id in sorted(setup.fills, key=lambda f: f[0]):
            if trade_id in closes and leg in self.perps:  # closed at its bankruptcy price, not a fill
                replay_close(book, closes[trade_id])
                continue
            liquidity = Liquidity.MAKER if maker else Liquidity.TAKER
            book.on_fill(OrderFilled(ts, cid, side, price, qty, 0, inst.cash_units(fee), liquidity, trade_id))

    def on_fill(self, leg: str, fill: OrderFilled) -> None:
        (self.perps.get(leg) or self.ports[leg]).on_fill(fill)

    def mark(self, leg: str, ts: int, book) -> None:
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            return
        perp = self.perps.get(leg)
        if perp is None:
            self.ports[leg].mark(ts, bid + ask)
        else:  # the mark, then funding due by ts on the position (PerpRisk's schedule)
            perp.evaluate(ts, NORMAL, bid + ask)

    def take_funding(self) -> list[tuple[str, tuple]]:
        """Funding booked since the last call: ``(leg, (ts, rate, mark, amount, lots))``."""
        out = []
        for leg, perp in self.perps.items():
            log, perp.funding_log = perp.funding_log, []
            out += [(leg, entry) for entry in log]
        return out

    def _cash(self, units: int) -> int:
        return self.maker.cash_units(self.hedge.cash(units))

    def row(self, ts: int, bot_id: int) -> tuple | None:
        """One row for :func:`apps.portfolio.services.pnl_snapshots_record` (spot legs) or, with a
        perpetual leg, :func:`~apps.portfolio.services.perp_snapshots_record`; ``None`` until
        both legs have a mid (an equity without the base balances' value would read as a jump)."""
        if self.exact:
            return self._exact_row(ts, bot_id)
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

    def _leg_figures(self, leg: str, ts: int) -> dict[str, Fraction] | None:
        """A leg's figures in base units and the quote currency, exact (None without a mid)."""
        perp = self.perps.get(leg)
        if perp is None:
            port = self.ports[leg]
            if port.mid2 is None:
                return None
            inst = self.setups[leg].instrument
            s = port.snapshot(ts)

            def cash(units: int) -> Fraction:
                return Fraction(inst.cash(units))

            return {
                "position": Fraction(inst.quantity(s.position)),
                "cash": cash(s.cash),
                "mid": Fraction(inst.tick_size) * Fraction(s.mid),
                "realized": cash(s.realized),
                "unrealized": cash(s.unrealized),
                "fees": cash(s.fees),
                "equity": cash(s.equity),
                "funding": Fraction(0),
            }
        mark = perp.mark
        if mark is None:
            return None
        pos = perp.position
        wallet = perp.wallet if self.counted[leg] else Fraction(0)
        unrealized = pos.unrealized(mark) if pos.net_lots else Fraction(0)
        cash = wallet + pos.realized + pos.funding - pos.fees
        return {
            "position": pos.contracts(pos.net_lots) * Fraction(perp.spec.contract_size),
            "cash": cash,
            "mid": mark,
            "realized": pos.realized,
            "unrealized": unrealized,
            "fees": pos.fees,
            "equity": cash + unrealized,
            "funding": pos.funding,
        }

    def _exact_row(self, ts: int, bot_id: int) -> tuple | None:
        m, h = self._leg_figures("maker", ts), self._leg_figures("hedge", ts)
        if m is None or h is None:
            return None
        total = {k: m[k] + h[k] for k in m if k != "mid"}
        equity = total["equity"]
        if self.peak is None or equity > self.peak:
            self.peak = equity
        return (
            ts, bot_id, total["position"], total["cash"], m["mid"], total["realized"], total["unrealized"],
            total["fees"], equity, self.peak, self.peak - equity, total["funding"],
        )  # fmt: skip
