"""REST API for exchange accounts (secrets write-only) and markets."""

from __future__ import annotations

from django.db import transaction
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from apps.accounts.api_support import CanTrade, service_errors
from apps.bots.controls import account_kill_switch
from apps.core.serializers import ModelSerializer
from apps.exchanges import crypto
from apps.exchanges.models import ExchangeAccount, Market, VenueKind
from apps.exchanges.selectors import exchange_account_list, market_list
from apps.exchanges.services import (
    exchange_account_create,
    exchange_account_delete,
    exchange_account_rotate_keys,
    exchange_account_update,
    exchange_account_verify,
)

SECRET = {"write_only": True, "required": False, "allow_blank": True, "max_length": 512, "trim_whitespace": False}


class ExchangeAccountSerializer(ModelSerializer):
    fast_read = True
    owner = serializers.CharField(source="owner.username", read_only=True)
    api_key_hint = serializers.SerializerMethodField(help_text="masked API key, e.g. '••••abcd'")
    has_credentials = serializers.BooleanField(read_only=True)

    class Meta:
        model = ExchangeAccount
        fields = [
            "id",
            "owner",
            "label",
            "kind",
            "venue",
            "has_credentials",
            "api_key_hint",
            "paper_balances",
            "default_type",
            "verified_at",
            "verify_status",
            "verify_message",
            "kill_switch",
            "created",
        ]
        read_only_fields = fields

    def get_api_key_hint(self, obj: ExchangeAccount) -> str:
        try:
            return crypto.mask(crypto.decrypt(obj.api_key_enc))
        except crypto.CredentialDecryptError:
            return "(cannot decrypt)"


class ExchangeAccountCreateSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=VenueKind.choices, default=VenueKind.PAPER)
    venue = serializers.CharField(max_length=64, help_text="ccxt exchange id, 'replay:<name>' or 'sim:<name>'")
    api_key = serializers.CharField(**SECRET)
    api_secret = serializers.CharField(**SECRET)
    passphrase = serializers.CharField(**SECRET)
    paper_balances = serializers.DictField(
        child=serializers.CharField(max_length=40), required=False, help_text="asset -> amount, e.g. {'USDT': '10000'}"
    )
    default_type = serializers.CharField(
        max_length=16,
        required=False,
        allow_blank=True,
        help_text="'spot' or 'swap' (derivatives: perpetual swaps), ccxt's defaultType; checked against what the "
        "venue offers; left out: the venue's (spot where it has spot)",
    )


class ExchangeAccountUpdateSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=64, required=False)
    paper_balances = serializers.DictField(child=serializers.CharField(max_length=40), required=False)
    default_type = serializers.CharField(
        max_length=16,
        required=False,
        allow_blank=True,
        help_text="'spot' or 'swap' (derivatives), ccxt's defaultType, checked against the venue; blank: the "
        "venue's. Refused while any of the account's bots runs",
    )


class RotateKeysSerializer(serializers.Serializer):
    api_key = serializers.CharField(write_only=True, max_length=512, trim_whitespace=False)
    api_secret = serializers.CharField(write_only=True, max_length=512, trim_whitespace=False)
    passphrase = serializers.CharField(**SECRET)


class KillSerializer(serializers.Serializer):
    on = serializers.BooleanField(default=True, help_text="false clears the kill switch")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


KillResult = inline_serializer("KillResult", {"bots_killed": serializers.IntegerField()})


class ExchangeAccountViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your exchange accounts. API keys are write-only: responses show a masked hint only."""

    queryset = ExchangeAccount.objects.none()
    serializer_class = ExchangeAccountSerializer
    lookup_value_regex = "[^/]+"  # ids like "0.5" reach the view and get a JSON 404
    permission_classes = [IsAuthenticated, CanTrade]  # CanTrade alone lets anonymous reads through
    filterset_fields = ["kind", "venue"]
    ordering_fields = ["id", "label", "venue", "created"]

    def get_queryset(self):
        return exchange_account_list(user=self.request.user)

    @extend_schema(request=ExchangeAccountCreateSerializer, responses={201: ExchangeAccountSerializer})
    def create(self, request, *args, **kwargs):
        data = ExchangeAccountCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with service_errors():
            account = exchange_account_create(
                owner=request.user, actor=request.user, ip=request.META.get("REMOTE_ADDR"), **data.validated_data
            )
        return Response(ExchangeAccountSerializer(account).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ExchangeAccountUpdateSerializer, responses=ExchangeAccountSerializer)
    def update(self, request, *args, **kwargs):
        account = self.get_object()
        data = ExchangeAccountUpdateSerializer(data=request.data, partial=kwargs.get("partial", False))
        data.is_valid(raise_exception=True)
        with service_errors():
            account = exchange_account_update(account=account, actor=request.user, **data.validated_data)
        return Response(ExchangeAccountSerializer(account).data)

    @extend_schema(request=ExchangeAccountUpdateSerializer, responses=ExchangeAccountSerializer)
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request, *args, **kwargs):
        account = self.get_object()
        with service_errors():
            exchange_account_delete(account=account, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=ExchangeAccountSerializer)
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        """Fetch the balance with the stored keys (live) or report the paper balances."""
        account = exchange_account_verify(account=self.get_object(), actor=request.user)
        return Response(ExchangeAccountSerializer(account).data)

    @extend_schema(request=RotateKeysSerializer, responses=ExchangeAccountSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-keys")
    def rotate_keys(self, request, pk=None):
        """Replace the API key, secret and passphrase with new values."""
        account = self.get_object()
        data = RotateKeysSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with service_errors():
            account = exchange_account_rotate_keys(account=account, actor=request.user, **data.validated_data)
        return Response(ExchangeAccountSerializer(account).data)

    @extend_schema(request=KillSerializer, responses=KillResult)
    @action(detail=True, methods=["post"])
    def kill(self, request, pk=None):
        """Turn the account's kill switch on (kill all its bots) or off."""
        account = self.get_object()
        data = KillSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with service_errors(), transaction.atomic():
            killed = account_kill_switch(account=account, actor=request.user, **data.validated_data)
        return Response({"bots_killed": killed})


class MarketSerializer(ModelSerializer):
    fast_read = True

    class Meta:
        model = Market
        fields = [
            "id",
            "venue",
            "symbol",
            "base",
            "quote",
            "tick_size",
            "lot_size",
            "min_notional",
            "maker_fee",
            "taker_fee",
            "kind",
            "contract_size",
            "settle",
            "max_leverage",
            "active",
        ]
        read_only_fields = fields


class MarketFilter(filters.FilterSet):
    venue = filters.CharFilter()
    symbol = filters.CharFilter()
    base = filters.CharFilter()
    quote = filters.CharFilter()
    kind = filters.CharFilter()
    active = filters.BooleanFilter()

    class Meta:
        model = Market
        fields = ["venue", "symbol", "base", "quote", "kind", "active"]


class MarketViewSet(viewsets.ReadOnlyModelViewSet):
    """Markets (venue, symbol, tick, lot, minimum notional, fees); read-only."""

    queryset = Market.objects.none()
    serializer_class = MarketSerializer
    lookup_value_regex = "[^/]+"  # ids like "0.5" reach the view and get a JSON 404
    filterset_class = MarketFilter
    ordering_fields = ["venue", "symbol", "id"]

    def get_queryset(self):
        return market_list(active=None)
