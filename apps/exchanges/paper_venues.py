"""The replay and sim venues a paper account can be opened on, and which of them offer perpetual
swaps: those served here, :func:`connectors.venues.paper_venues` (the replay venues of the shipped
recordings, the seeded sim venues). A ``replay:`` / ``sim:`` venue not served is refused by
:func:`paper_venue_error`, naming what is accepted; a sim venue an operator gave an active market
(the hosted synthetic market plays any ``sim:<name>``) is served too. A paper account may also
name a ccxt exchange id (paper orders on that exchange's live market data)."""

from __future__ import annotations

from connectors.venues import is_perpetual_symbol, paper_venues

SYNTHETIC_PREFIXES = ("replay:", "sim:")


def offers(symbols: tuple[str, ...]) -> str:
    """What a venue's symbols offer: ``spot``, ``perpetuals`` or ``spot and perpetuals``."""
    perps = [is_perpetual_symbol(s) for s in symbols]
    if all(perps):
        return "perpetuals"
    return "spot and perpetuals" if any(perps) else "spot"


def served() -> list[tuple[str, tuple[str, ...], str]]:
    """``(venue, symbols, offers)`` of every paper venue served here, in order."""
    return [(venue, symbols, offers(symbols)) for venue, symbols in paper_venues().items()]


def summary() -> str:
    """The served venues grouped by what they offer, e.g. ``spot: replay:binance-spot, ...;
    perpetuals: replay:binance-usdm, ...``."""
    groups: dict[str, list[str]] = {}
    for venue, _symbols, kind in served():
        groups.setdefault(kind, []).append(venue)
    return "; ".join(f"{kind}: {', '.join(venues)}" for kind, venues in groups.items())


def paper_venue_error(venue: str) -> str | None:
    """Why ``venue`` cannot hold a paper account, or None (a served replay/sim venue, a sim venue
    with an active stored market, or not a replay/sim venue: a ccxt id is checked elsewhere)."""
    if not venue.startswith(SYNTHETIC_PREFIXES) or venue in paper_venues():
        return None
    if venue.startswith("sim:"):
        from apps.exchanges.models import Market

        if Market.objects.filter(venue=venue, active=True).exists():
            return None
    return (
        f"{venue!r} is not a paper venue served here; accepted: {summary()}; or a ccxt exchange id "
        "(paper orders on its live market data)"
    )


__all__ = ["offers", "paper_venue_error", "served", "summary"]
