"""Forms of the portal. Strategy parameters and risk limits are rendered from the ``trading``
config schemas (``describe``) and validated by the services, whose per-field errors
(``trading.config.ConfigError`` via ``FieldErrors``) are shown next to each field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.http import QueryDict
from django.utils.html import format_html, format_html_join

from apps.backtests.models import DataSource
from apps.bots import hedged
from apps.bots.guards import avellaneda_stoikov_warning
from apps.core import jsondepth
from apps.notifications.models import ChannelKind, EventKind
from trading.config import describe
from trading.risk import RiskLimits
from trading.strategies import STRATEGIES, describe_strategy

STRATEGY_CHOICES = [(name, name.replace("_", " ")) for name in STRATEGIES]
# the new-bot form also offers hosted hedged bots (two legs; params: apps.bots.hedged)
CREATE_STRATEGY_CHOICES = [*STRATEGY_CHOICES, (hedged.STRATEGY, "hedged maker (two venues, paper)")]


@dataclass
class SchemaField:
    """One input of a schema-driven fieldset, ready for the template."""

    name: str
    input_name: str
    title: str
    kind: str  # text | number | integer | checkbox | select | json
    value: Any
    help: str = ""
    unit: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)  # (value, label) of a select
    required: bool = False
    errors: list[str] = field(default_factory=list)


def _messages(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [f"{k}: {'; '.join(_messages(v))}" for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


class SchemaFieldset:
    """Inputs named ``<prefix>.<field>`` for a config schema, with values and errors.

    ``parse(data)`` turns posted strings into the JSON types the config parser accepts (integers
    as ints, booleans from checkboxes, nested objects from JSON); empty inputs are left out so the
    defaults apply. Unparseable text is passed through so the service names the field and value."""

    def __init__(
        self,
        schema: dict[str, Any],
        prefix: str,
        values: dict[str, Any] | None = None,
        errors: dict[str, Any] | None = None,
    ) -> None:
        self.schema = schema
        self.prefix = prefix
        self.values = dict(values or {})
        self.errors = dict(errors or {})
        self.owner = None  # a hedged bot's owner: its hedge leg is picked from their accounts

    @classmethod
    def for_strategy(cls, strategy: str, values=None, errors=None) -> SchemaFieldset:
        return cls(
            describe_strategy(strategy) if strategy in STRATEGIES else {"properties": {}}, "params", values, errors
        )

    @classmethod
    def for_bot_strategy(cls, strategy: str, values=None, errors=None, *, owner=None) -> SchemaFieldset:
        """A hosted bot's params: as :meth:`for_strategy`, and a hedged bot's two legs (a hedged
        backtest keeps its settings in its data parameters, so the backtest form uses the other).
        Given the bot's ``owner``, the hedge leg's ids are picked from lists
        (:func:`hedge_leg_options`)."""
        if strategy == hedged.STRATEGY:
            fieldset = cls({**hedged.params_schema(), "strategy": hedged.STRATEGY}, "params", values, errors)
            fieldset.owner = owner
            return fieldset
        return cls.for_strategy(strategy, values, errors)

    @classmethod
    def for_risk(cls, values=None, errors=None) -> SchemaFieldset:
        return cls(describe(RiskLimits), "risk", values, errors)

    @property
    def required_names(self) -> set[str]:
        """The schema's ``required`` list when it has one, else every property without a default
        (a property whose default is computed, e.g. from another field, is listed as optional by
        a schema that names its required ones)."""
        if "required" in self.schema:
            return set(self.schema["required"])
        props = self.schema.get("properties", {})
        return {name for name, p in props.items() if "default" not in p}

    def fields(self) -> list[SchemaField]:
        if self.owner is not None and self.schema.get("strategy") == hedged.STRATEGY:
            hedge_leg_options(self.schema, owner=self.owner, values=self.values)  # from the values as posted
        out = []
        required = self.required_names
        for name, prop in self.schema.get("properties", {}).items():
            kind = self._kind(prop)
            value = self.values.get(name, prop.get("default"))
            if kind == "json":
                value = json.dumps(value if value is not None else {}, indent=1)
            elif value is None:
                value = ""
            out.append(
                SchemaField(
                    name=name,
                    input_name=f"{self.prefix}.{name}",
                    title=prop.get("title", name).capitalize(),
                    kind=kind,
                    value=value,
                    help=prop.get("description", ""),
                    unit=prop.get("unit", ""),
                    choices=[(str(v), str(label)) for v, label in prop.get("options", [])]
                    or [(str(c), str(c)) for c in prop.get("enum", [])],
                    required=name in required,
                    errors=_messages(self.errors.get(name)) + self._nested_errors(name),
                )
            )
        return out

    def _nested_errors(self, name: str) -> list[str]:
        """Errors of a JSON field's members (``hedge_perp.wallet``), shown at the field with the member named."""
        return [f"{k[len(name) + 1 :]}: {m}" for k, v in self.errors.items() if k.startswith(name + ".")
                for m in _messages(v)]  # fmt: skip

    def other_errors(self) -> list[str]:
        names = set(self.schema.get("properties", {}))
        return [
            f"{k}: {m}" if k != "__all__" else m
            for k, v in self.errors.items()
            if k not in names and k.split(".", 1)[0] not in names
            for m in _messages(v)
        ]

    @staticmethod
    def _kind(prop: dict[str, Any]) -> str:
        if "enum" in prop or "options" in prop:
            return "select"
        return {"boolean": "checkbox", "integer": "integer", "number": "number", "object": "json"}.get(
            prop.get("type", "string"), "text"
        )

    def parse(self, data: QueryDict) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, prop in self.schema.get("properties", {}).items():
            key = f"{self.prefix}.{name}"
            kind = self._kind(prop)
            if kind == "checkbox":
                out[name] = data.get(key) in ("on", "true", "1")
                continue
            raw = (data.get(key) or "").strip()
            if raw == "":
                continue
            if kind == "integer" or (kind == "select" and prop.get("type") == "integer"):
                try:
                    out[name] = int(raw)
                except ValueError:
                    out[name] = raw
            elif kind == "json":
                try:
                    out[name] = jsondepth.loads(raw)
                except ValueError:
                    out[name] = raw
                if prop.get("omit_empty") and out[name] in ({}, None):  # an empty object: left out
                    del out[name]
            else:
                out[name] = raw
        self.values = out
        return out


def hedge_leg_options(schema: dict[str, Any], *, owner, values: dict[str, Any]) -> None:
    """Turn a hedged bot's ``hedge_account`` and ``hedge_market`` id fields into lists: the
    ``owner``'s own accounts, and the active markets on the venue of the chosen hedge account (the
    one in ``values`` if it is the owner's, else the first). The lists only guide the choice: the
    service still refuses an id outside them by field, value and what is accepted
    (:func:`apps.bots.hedged.validate`)."""
    from apps.exchanges.models import ExchangeAccount
    from apps.exchanges.selectors import market_list

    accounts = list(ExchangeAccount.objects.filter(owner=owner).order_by("id"))
    props = schema["properties"]
    props["hedge_account"]["options"] = [(a.pk, f"{a.label} · {a.venue} ({a.kind})") for a in accounts]
    chosen = next((a for a in accounts if str(a.pk) == str(values.get("hedge_account"))), None)
    chosen = chosen or (accounts[0] if accounts else None)
    markets = list(market_list(venue=chosen.venue)) if chosen is not None else []
    props["hedge_market"]["options"] = [(m.pk, f"{m.symbol} · {m.venue}") for m in markets]
    if chosen is not None:
        props["hedge_market"]["description"] = f"a market on {chosen.venue}, the hedge account's venue"


def strategy_warning(strategy: str, params: dict[str, Any], market) -> str:
    """A warning shown with a strategy's parameters on ``market`` (an Avellaneda-Stoikov spread
    that would be clamped to its cap: :func:`apps.bots.guards.avellaneda_stoikov_warning`)."""
    if strategy != "avellaneda_stoikov":
        return ""
    return avellaneda_stoikov_warning(params=params, market=market)


class BotCreateForm(forms.Form):
    name = forms.CharField(max_length=80)
    exchange_account = forms.ChoiceField(label="Account")
    market = forms.ChoiceField()
    strategy = forms.ChoiceField(choices=CREATE_STRATEGY_CHOICES)

    def __init__(self, *args, accounts=(), markets=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["exchange_account"].choices = [(a.pk, f"{a.label} · {a.venue}") for a in accounts]
        # a derivatives account's markets are the perpetual swaps (Market.kind), a spot one's the rest
        self.fields["market"].choices = [
            (m.pk, f"{m.symbol} · {m.venue}" + (" · perpetual" if m.is_perpetual else "")) for m in markets
        ]


class BotMetaForm(forms.Form):
    name = forms.CharField(max_length=80)
    strategy = forms.ChoiceField(choices=CREATE_STRATEGY_CHOICES)


class DatalistInput(forms.TextInput):
    """A free-text input offering suggestions: ``options()`` gives ``(value, label)`` pairs, read
    when rendered, listed in a ``<datalist>`` the input names."""

    def __init__(self, options, list_id: str, attrs=None) -> None:
        super().__init__({**(attrs or {}), "list": list_id, "autocomplete": "off"})
        self.options = options
        self.list_id = list_id

    def render(self, name, value, attrs=None, renderer=None):
        html = super().render(name, value, attrs, renderer)
        items = format_html_join("", '<option value="{}" label="{}"></option>', self.options())
        return html + format_html('<datalist id="{}">{}</datalist>', self.list_id, items)


def venue_options() -> list[tuple[str, str]]:
    """The account form's venue suggestions: the paper venues served here (what each offers), then
    ccxt's exchange ids for live accounts."""
    import ccxt

    from apps.exchanges.paper_venues import served

    paper = [(venue, f"paper · {kind}: {', '.join(symbols)}") for venue, symbols, kind in served()]
    return paper + [(exchange, "live · ccxt") for exchange in ccxt.exchanges]


def venue_help() -> str:
    from apps.exchanges.paper_venues import summary

    return (
        f"Paper: a venue served here — {summary()}; a venue with perpetuals only opens a derivatives "
        "account (Markets below). Live: a ccxt exchange id, e.g. binance (spot and perpetual swaps) or "
        "binanceusdm (USD-M perpetuals)."
    )


class ExchangeAccountForm(forms.Form):
    label = forms.CharField(max_length=64)
    kind = forms.ChoiceField(choices=[("paper", "Paper"), ("live", "Live")])
    venue = forms.CharField(max_length=64, widget=DatalistInput(venue_options, "venue-options"))
    # a text value behind a select: the service names a bad value and what the venue accepts
    default_type = forms.CharField(
        required=False,
        label="Markets",
        widget=forms.Select(
            choices=[("", "as the venue offers"), ("spot", "Spot"), ("swap", "Derivatives (perpetual swaps)")]
        ),
        help_text="spot or derivatives (ccxt defaultType); left as the venue offers, a venue with perpetual "
        "swaps only opens a derivatives account",
    )
    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    api_secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    passphrase = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    paper_balances = forms.CharField(
        required=False, help_text='e.g. {"BTC": "1", "USDT": "10000"}', widget=forms.TextInput()
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["venue"].help_text = venue_help()

    def clean_venue(self) -> str:
        """A paper account's replay/sim venue must be one served here (the service checks the rest)."""
        from apps.exchanges.paper_venues import paper_venue_error

        venue = self.cleaned_data["venue"]
        error = paper_venue_error(venue) if self.cleaned_data.get("kind") == "paper" else None
        if error:
            raise forms.ValidationError(error)
        return venue

    def clean_paper_balances(self) -> dict:
        raw = self.cleaned_data.get("paper_balances", "").strip()
        if not raw:
            return {}
        try:
            value = jsondepth.loads(raw)
        except jsondepth.JSONTooDeep as exc:
            raise forms.ValidationError(str(exc)) from None
        except ValueError:
            raise forms.ValidationError(f'{raw!r} is not JSON; give an object like {{"USDT": "10000"}}') from None
        if not isinstance(value, dict):
            raise forms.ValidationError("give an object of asset -> amount")
        return value


class RotateKeysForm(forms.Form):
    api_key = forms.CharField(widget=forms.PasswordInput(render_value=False))
    api_secret = forms.CharField(widget=forms.PasswordInput(render_value=False))
    passphrase = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))


class ChannelForm(forms.Form):
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    name = forms.CharField(max_length=64)
    target = forms.CharField(max_length=300, label="Address / chat id / URL")
    secret = forms.CharField(
        required=False,
        label="Secret (Telegram bot token or webhook signing secret)",
        widget=forms.PasswordInput(render_value=False),
    )

    TARGET_FIELD = {"email": "address", "telegram": "chat_id", "discord": "url", "webhook": "url"}

    def config(self) -> dict[str, str]:
        return {self.TARGET_FIELD[self.cleaned_data["kind"]]: self.cleaned_data["target"]}


class RuleForm(forms.Form):
    event_kind = forms.ChoiceField(choices=[c for c in EventKind.choices if c[0] != EventKind.TEST])
    channels = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    bot = forms.ChoiceField(required=False)
    threshold = forms.CharField(required=False)

    def __init__(self, *args, channels=(), bots=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["channels"].choices = [(c.pk, c.name) for c in channels]
        self.fields["bot"].choices = [("", "any bot")] + [(b.pk, b.name) for b in bots]


class BacktestForm(forms.Form):
    name = forms.CharField(max_length=128)
    # hedged_maker: two legs, data source hedged_recordings (its settings in data_params.bot)
    strategy = forms.ChoiceField(choices=[*STRATEGY_CHOICES, ("hedged_maker", "hedged maker (two venues)")])
    data_source = forms.ChoiceField(choices=DataSource.choices)
    data_params = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        initial='{"recording": "binance-spot-btcusdt", "max_events": 20000}',
        help_text="JSON parameters of the data source",
    )

    def clean_data_params(self) -> dict:
        raw = self.cleaned_data["data_params"]
        try:
            value = jsondepth.loads(raw)
        except jsondepth.JSONTooDeep as exc:
            raise forms.ValidationError(str(exc)) from None
        except ValueError as exc:
            raise forms.ValidationError(f"not JSON ({exc.msg} at column {exc.colno}); give an object") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("give a JSON object of data-source parameters")
        return value
