"""The perpetual settings of a bot in the portal's forms (new bot, configuration): inputs named
``perp.<setting>`` (leverage, margin mode, position mode, constant funding rate) and ``perp.limits.<limit>``
(:class:`trading.perp_risk.PerpRiskLimits`: the liquidation-distance pause and the contract and
notional limits), parsed into the bot's ``risk["perp"]``.

The form does not validate them itself: the bot services do, exactly as for the API
(:func:`apps.derivatives.hosting.validate`), and their errors (``risk`` -> ``perp.leverage``,
``perp.limits.min_liquidation_distance``, ...) are put back next to these inputs. The funding
skew is a strategy parameter (``params.funding_skew`` of ``inventory_based`` and
``avellaneda_stoikov``), so it stays with the strategy's inputs."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from apps.dashboard.forms import SchemaFieldset
from trading.config import describe
from trading.perp_risk import PerpRiskLimits

PREFIX = "perp"
# margin_check is on by default and a checkbox posts nothing when cleared: not offered here
HIDDEN_LIMITS = ("margin_check",)


def settings_schema(max_leverage: int | None = None) -> dict[str, Any]:
    top = f" up to {max_leverage}" if max_leverage else " up to the market's maximum"
    return {
        "properties": {
            "leverage": {"type": "integer", "default": 10, "title": "leverage", "unit": "x",
                         "description": f"a whole number from 1{top}"},
            "margin_mode": {"enum": ["isolated", "cross"], "default": "isolated", "title": "margin mode"},
            "position_mode": {"enum": ["one_way", "hedge"], "default": "one_way", "title": "position mode",
                              "description": "one_way: one net position; hedge: a long and a short leg (each "
                              "quote opens a leg, or closes the other leg once one is open)"},
            "funding_rate": {"type": "string", "default": "", "title": "funding rate (per 8 h)",
                             "description": "a constant rate from -0.03 to 0.03 (0.0001 = 0.01 %); empty: the "
                             "market's stored series, else 0.01 %"},
            "wallet": {"type": "string", "default": "", "title": "wallet allocation (paper)",
                       "description": "this bot's share of the paper account's settle balance; required when "
                       "the account has several perpetual bots (together at most the balance); empty: the "
                       "whole balance for the account's only perpetual bot"},
        }
    }  # fmt: skip


def limits_schema() -> dict[str, Any]:
    schema = describe(PerpRiskLimits)
    props = {k: v for k, v in schema["properties"].items() if k not in HIDDEN_LIMITS}
    return {**schema, "properties": props}


class PerpFieldsets:
    """The two fieldsets (settings, limits) of a bot's ``risk["perp"]``."""

    def __init__(self, values: dict | None = None, errors: dict | None = None, max_leverage: int | None = None):
        values = dict(values or {})
        limits = values.pop("limits", None) or {}
        self.settings = SchemaFieldset(settings_schema(max_leverage), PREFIX, values)
        self.limits = SchemaFieldset(limits_schema(), f"{PREFIX}.limits", limits)
        if errors:
            self.set_errors(errors)

    @staticmethod
    def posted(data: QueryDict) -> bool:
        return any(key.startswith(PREFIX + ".") for key in data)

    def parse(self, data: QueryDict) -> dict[str, Any]:
        """``risk["perp"]`` from the posted inputs (empty inputs left out: the defaults apply)."""
        out = self.settings.parse(data)
        limits = self.limits.parse(data)
        if limits:
            out["limits"] = limits
        return out

    def set_errors(self, risk_errors: dict[str, Any]) -> dict[str, Any]:
        """Take the ``perp...`` errors out of the risk errors onto these inputs; return the rest."""
        rest: dict[str, Any] = {}
        settings: dict[str, Any] = {}
        limits: dict[str, Any] = {}
        for name, messages in (risk_errors or {}).items():
            if name.startswith(f"{PREFIX}.limits."):
                limits[name[len(PREFIX) + 8 :]] = messages
            elif name.startswith(f"{PREFIX}."):
                settings[name[len(PREFIX) + 1 :]] = messages
            elif name == PREFIX:
                settings["__all__"] = messages
            else:
                rest[name] = messages
        self.settings.errors, self.limits.errors = settings, limits
        return rest

    @property
    def errors(self) -> bool:
        return bool(self.settings.errors or self.limits.errors)
