"""``GET /api/v1/portfolio/positions/``: your positions per exchange account (perpetual positions
per bot, spot balances per asset; :mod:`apps.portfolio.positions`)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.portfolio.positions import account_positions

TEXT = {"allow_null": True, "required": False}


class PerpPositionSerializer(serializers.Serializer):
    bot = serializers.IntegerField()
    bot_name = serializers.CharField()
    symbol = serializers.CharField()
    leg = serializers.CharField(
        **TEXT, help_text="a hedged bot's leg held on this account: maker or hedge; null for a single-venue bot"
    )
    live = serializers.BooleanField(help_text="figures from the running bot's live status; else only the position")
    position_contracts = serializers.CharField(help_text="contracts (decimal string; + long, - short)")
    entry_price = serializers.CharField(**TEXT)
    mark_price = serializers.CharField(**TEXT)
    unrealized = serializers.CharField(**TEXT, help_text="settle currency")
    realized = serializers.CharField(**TEXT, help_text="realized PnL booked on the position (settle currency)")
    fees = serializers.CharField(**TEXT, help_text="fees paid on the position (settle currency)")
    leverage = serializers.IntegerField(**TEXT)
    margin_mode = serializers.CharField(**TEXT)
    margin_used = serializers.CharField(**TEXT)
    margin_free = serializers.CharField(
        **TEXT, help_text="the bot's margin balance (its wallet or allocation + PnL) less the margin used"
    )
    liquidation_price = serializers.CharField(**TEXT)
    liquidation_distance_pct = serializers.CharField(**TEXT)
    funding = serializers.CharField(**TEXT, help_text="funding booked: + received, - paid (settle currency)")
    settle = serializers.CharField(**TEXT)


class SpotBalanceSerializer(serializers.Serializer):
    asset = serializers.CharField()
    amount = serializers.CharField()


class AccountPositionsSerializer(serializers.Serializer):
    account = serializers.IntegerField()
    label = serializers.CharField()
    venue = serializers.CharField()
    kind = serializers.CharField()
    default_type = serializers.CharField(help_text="spot or swap (derivatives)")
    perp = PerpPositionSerializer(many=True)
    spot = SpotBalanceSerializer(many=True)


class PositionsView(APIView):
    """Your positions across your exchange accounts: perpetual positions per bot, spot balances per asset."""

    @extend_schema(responses=AccountPositionsSerializer(many=True))
    def get(self, request):
        return Response(AccountPositionsSerializer(account_positions(owner=request.user), many=True).data)
