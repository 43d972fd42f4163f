"""The exchange's liquidation figures of a LIVE perpetual bot, read from its position reports
(:mod:`workers.perp_live`: ``fetchPositions``; :mod:`workers.perp_stream`: ``watchPositions``).

- Hedge mode: each leg's ``liquidationPrice`` and ``isolatedWallet`` (ccxt ``info``) go to
  perpetual risk with the leg's size (:meth:`trading.isolated_margin.LivePerpRisk.set_venue_legs`):
  the liquidation-distance guard watches the exchange's figure of a leg while the bot's leg has
  that size, its own otherwise (:mod:`trading.live_legs`). The bot page and the API show both
  per leg (``exchange_liquidation_price``, ``exchange_isolated_wallet``, ``liquidation_source``).
- Both modes: when the exchange's liquidation price in use differs from the bot's own by more
  than ``settings.PERP_LIQ_DISAGREE`` (a fraction of the exchange's price, default 0.005) a
  ``perp`` / ``liquidation_disagree`` bot event names both figures, once per leg, size and
  exchange figure (the exchange's stays in use: it is the one that liquidates).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from connectors.ccxt_perp import PositionReport
from trading.contracts import frac, to_decimal
from trading.live_legs import VenueLeg, disagreements


def threshold() -> Fraction:
    from django.conf import settings

    return Fraction(str(getattr(settings, "PERP_LIQ_DISAGREE", "0.005")))


def venue_legs(reports: Iterable[PositionReport], lot: object) -> dict[str, VenueLeg]:
    """The long and short rows of hedge mode as :class:`VenueLeg` (whole lots; a row whose size
    is not a whole number of lots is left out: the position comparison reports it)."""
    out = {}
    for r in reports:
        if r.position_side not in ("long", "short"):
            continue
        lots = frac(r.contracts) / frac(lot)
        if lots.denominator != 1:
            continue
        out[r.position_side] = VenueLeg(
            int(lots),
            None if r.liquidation_price is None else frac(r.liquidation_price),
            None if r.isolated_wallet is None else frac(r.isolated_wallet),
        )
    return out


class LiquidationFigures:
    """The exchange's per-leg figures into perpetual risk, and the disagreement events."""

    def __init__(self, perp) -> None:
        self.perp = perp
        self.said: dict[str, tuple] = {}  # leg -> (lots, exchange price) already in an event

    def apply(self, reports: list[PositionReport]) -> None:
        risk = self.perp.runner.engine.perp
        if risk.hedge is not None:
            risk.set_venue_legs(venue_legs(reports, risk.instrument.lot_size))
        self.check()

    def check(self) -> None:
        risk = self.perp.runner.engine.perp
        found = disagreements(risk, threshold())
        for name in [n for n in self.said if n not in found]:
            del self.said[name]
        for name, (theirs, own) in found.items():
            lots = risk.position.net_lots if name == "position" else self._lots(risk, name)
            key = (lots, theirs)
            if self.said.get(name) == key:
                continue
            self.said[name] = key
            self._event(risk, name, theirs, own)

    @staticmethod
    def _lots(risk, name: str) -> tuple[int, int]:
        legs = risk.position.legs
        return (legs["long"].lots, legs["short"].lots) if name == "account" else legs[name].lots

    def _event(self, risk, name: str, theirs: Fraction, own: Fraction | None) -> None:
        where = {"position": "the position", "account": "the account (cross, both legs)"}.get(name, f"the {name} leg")
        ours = "none (the bot's figures give no liquidation)" if own is None else f"{to_decimal(own, 8).normalize():f}"
        gap = None if own is None else abs(theirs - own) / theirs
        self.perp.runner._event(
            "perp",
            "liquidation_disagree",
            f"{self.perp.symbol}: the exchange's liquidation price of {where} is "
            f"{to_decimal(theirs, 8).normalize():f}, the bot's own {ours}"
            + ("" if gap is None else f" ({float(gap):.2%} apart)")
            + f"; the liquidation-distance guard uses the exchange's (differences above {float(threshold()):.2%} "
            "are reported)",
            {
                "leg": name,
                "exchange": f"{to_decimal(theirs, 8):f}",
                "own": None if own is None else f"{to_decimal(own, 8):f}",
            },
        )
