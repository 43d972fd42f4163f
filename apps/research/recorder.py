"""Who owns what ``record_feed`` writes, and which market it is of: the command registers every
file it writes in the recording registry (``apps.research.recordings.register_recorded``).

Ownership: ``--owner <username>`` names a user (any role but viewer: a viewer cannot use a
recording in a backtest). Without it the recording belongs to the system user ``recorder``
(created on first use: a viewer that cannot log in — inactive, no usable password). Operators
see and use every recording, so a recorder run by cron or by an operator on the machine is on
the Research page of every operator and can be backtested by them; a trader's own recordings
need ``--owner``.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from apps.accounts.models import Role

SYSTEM_OWNER = "recorder"


class RecorderSetupError(ValueError):
    """The registration cannot happen (unknown owner or market); the message names the option."""


def recorder_owner(username: str | None):
    """The user a recording is registered for: ``username``, else the system user."""
    User = get_user_model()
    if username is None:
        user, created = User.objects.get_or_create(
            username=SYSTEM_OWNER, defaults={"role": Role.VIEWER, "is_active": False}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user
    user = User.objects.filter(username=username).first()
    if user is None:
        raise RecorderSetupError(f"--owner: {username!r} is not a user; give an existing username")
    if not user.can_trade:
        raise RecorderSetupError(
            f"--owner: {username!r} is a viewer and could not backtest the recording; give a trader or an operator"
        )
    return user


def market_venue_symbol(venue: str, symbol: str) -> tuple[str, str]:
    """The portal market a recording of ``venue``/``symbol`` is of. A replay of a shipped
    recording (``replay:binance-spot-btcusdt``) is of the replay venue's market
    (``replay:binance-spot``, the recording's symbol)."""
    if venue.startswith("replay:"):
        from connectors.binance_recording import RECORDINGS

        name = venue.removeprefix("replay:")
        if name not in RECORDINGS:
            raise RecorderSetupError(
                f"--venue: {venue!r}: recording {name!r} is not shipped; accepted: {', '.join(RECORDINGS)}"
            )
        return f"replay:{name.rsplit('-', 1)[0]}", RECORDINGS[name].instrument.symbol
    return venue, symbol


def recorder_market(venue: str, symbol: str):
    from apps.exchanges.models import Market

    market_venue, market_symbol = market_venue_symbol(venue, symbol)
    market = Market.objects.filter(venue=market_venue, symbol=market_symbol).first()
    if market is None:
        raise RecorderSetupError(
            f"--venue/--symbol: no market {market_venue} {market_symbol} in the portal to register the recording "
            "under; add the market (sync the venue's markets) or pass --no-register"
        )
    return market
