"""Exchange accounts (live with encrypted credentials, or paper) and market metadata."""

from __future__ import annotations

from django.conf import settings
from django.db import models

MONEY = {"max_digits": 38, "decimal_places": 18}


class VenueKind(models.TextChoices):
    LIVE = "live", "Live"
    PAPER = "paper", "Paper"


class MarketType(models.TextChoices):
    """Which of a venue's markets an account trades: the ccxt ``defaultType`` option its exchange
    object is built with (``swap`` is ccxt's unified type for perpetual swaps)."""

    SPOT = "spot", "Spot"
    SWAP = "swap", "Derivatives (perpetual swaps)"


class VerifyStatus(models.TextChoices):
    UNVERIFIED = "unverified", "Not verified"
    OK = "ok", "OK"
    AUTH_FAILED = "auth_failed", "Authentication failed"
    NETWORK_ERROR = "network_error", "Network error"
    ERROR = "error", "Error"


class ExchangeAccount(models.Model):
    """A user's account on a venue: a ccxt exchange id, ``replay:<name>`` or ``sim:<name>``.

    Credentials are stored only encrypted (``*_enc``); read them with
    :func:`apps.exchanges.services.exchange_account_credentials`.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exchange_accounts")
    label = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=VenueKind.choices, default=VenueKind.PAPER)
    venue = models.CharField(max_length=64, help_text="ccxt exchange id, 'replay:<name>' or 'sim:<name>'")
    api_key_enc = models.TextField(blank=True, default="", editable=False)
    api_secret_enc = models.TextField(blank=True, default="", editable=False)
    passphrase_enc = models.TextField(blank=True, default="", editable=False)
    paper_balances = models.JSONField(default=dict, blank=True, help_text="asset -> decimal string")
    default_type = models.CharField(
        max_length=8,
        choices=MarketType.choices,
        blank=True,
        default="",
        help_text="spot or swap (derivatives): ccxt's defaultType; blank = inferred from the venue when saved",
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    balances_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when a live account's balances were last fetched from the exchange and stored "
        "(portfolio Balance rows); null: never, its balances are not known",
    )
    verify_status = models.CharField(max_length=16, choices=VerifyStatus.choices, default=VerifyStatus.UNVERIFIED)
    verify_message = models.TextField(blank=True, default="")
    kill_switch = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["owner", "label"], name="exchangeaccount_owner_label_uniq")]
        indexes = [models.Index(fields=["venue"])]

    def __str__(self) -> str:
        return f"{self.label} ({self.kind} {self.venue})"

    def __repr__(self) -> str:  # never the credentials
        return f"<ExchangeAccount id={self.pk} owner={self.owner_id} label={self.label!r} venue={self.venue!r}>"

    def save(self, *args, **kwargs) -> None:
        if not self.default_type:  # an account created without a type trades what its venue offers
            from apps.exchanges.market_types import venue_default_type

            self.default_type = venue_default_type(self.venue)
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "default_type"}
        super().save(*args, **kwargs)

    @property
    def is_derivatives(self) -> bool:
        return self.default_type == MarketType.SWAP

    @property
    def ccxt_options(self) -> dict[str, str]:
        """The ccxt exchange options of this account (``{"defaultType": ...}``)."""
        return {"defaultType": self.default_type or MarketType.SPOT}

    @property
    def has_credentials(self) -> bool:
        return bool(self.api_key_enc or self.api_secret_enc)


class ContractKind(models.TextChoices):
    """What a market trades: spot balances, or a linear / inverse perpetual (``trading.contracts``)."""

    SPOT = "spot", "Spot"
    LINEAR = "linear", "Linear perpetual"
    INVERSE = "inverse", "Inverse perpetual"


MAX_CONTRACT_SIZE = 10**9  # the bounds of trading.contracts.ContractSpec, also CHECK constraints
MAX_LEVERAGE = 1000


class Market(models.Model):
    """A tradable market on a venue with its tick, lot, minimum notional and fees, and for a
    perpetual its contract: kind (linear / inverse), contract size (base units per contract for a
    linear one, quote units for an inverse one), settle currency and the venue's maximum leverage.

    The contract fields come from ccxt's market metadata (``contract``, ``linear``/``inverse``,
    ``contractSize``, ``settle``, ``limits.leverage.max``: :func:`apps.exchanges.markets.market_sync`)
    or are seeded for the replay/sim venues; the hosted perpetual code reads them
    (:func:`apps.exchanges.markets.market_contract`) instead of guessing from the symbol. They are
    bounded in the database (CHECK constraints) as in :meth:`clean`, which names the field, the
    value and what is accepted.
    """

    venue = models.CharField(max_length=64)
    symbol = models.CharField(max_length=64)
    base = models.CharField(max_length=32)
    quote = models.CharField(max_length=32)
    tick_size = models.DecimalField(**MONEY)
    lot_size = models.DecimalField(**MONEY)
    min_notional = models.DecimalField(**MONEY, default=0)
    maker_fee = models.DecimalField(max_digits=12, decimal_places=8, default=0)
    taker_fee = models.DecimalField(max_digits=12, decimal_places=8, default=0)
    kind = models.CharField(max_length=8, choices=ContractKind.choices, default=ContractKind.SPOT)
    contract_size = models.DecimalField(**MONEY, default=1)
    settle = models.CharField(max_length=32, blank=True, default="")
    max_leverage = models.DecimalField(max_digits=4, decimal_places=0, default=1)
    active = models.BooleanField(default=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["venue", "symbol"]
        constraints = [
            models.UniqueConstraint(fields=["venue", "symbol"], name="market_venue_symbol_uniq"),
            models.CheckConstraint(
                condition=models.Q(kind__in=[c.value for c in ContractKind]), name="market_kind_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(contract_size__gt=0, contract_size__lte=MAX_CONTRACT_SIZE),
                name="market_contract_size_range",
            ),
            models.CheckConstraint(
                condition=models.Q(max_leverage__gte=1, max_leverage__lte=MAX_LEVERAGE),
                name="market_max_leverage_range",
            ),
            models.CheckConstraint(
                condition=models.Q(kind=ContractKind.SPOT) | ~models.Q(settle=""), name="market_perp_has_settle"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.venue} {self.symbol}"

    @property
    def is_perpetual(self) -> bool:
        return self.kind != ContractKind.SPOT

    def clean(self) -> None:
        """Refuse contract fields ``trading.contracts.ContractSpec`` would refuse, by field."""
        from django.core.exceptions import ValidationError

        from apps.exchanges.markets import contract_errors

        errors = contract_errors(self.kind, self.contract_size, self.settle, self.max_leverage)
        if errors:
            raise ValidationError(errors)
