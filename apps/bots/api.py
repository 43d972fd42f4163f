"""REST API for bots: CRUD, lifecycle actions, configuration history, events, kill-all."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.postgres.expressions import ArraySubquery
from django.db import transaction
from django.db.models import OuterRef
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, inline_serializer
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api_support import CanTrade, IsOperator, service_errors
from apps.bots import controls, services
from apps.bots.hedged import STRATEGY as HEDGED
from apps.bots.models import ActualState, Bot, BotConfigVersion, BotEvent, DesiredState, RiskPausedBy
from apps.bots.selectors import bot_can_change, bot_config_history, bot_event_list, bot_list
from apps.core.fields import QueryDateTimeField
from apps.core.filters import IdFilter
from apps.core.serializers import ModelSerializer
from apps.exchanges.models import ExchangeAccount
from apps.exchanges.selectors import exchange_account_list, market_list
from apps.orders.models import OrderSide
from trading.strategies import STRATEGIES


class BotSerializer(ModelSerializer):
    fast_read = True  # the bot list is the heaviest list (apps/core/serializers.py)
    owner = serializers.CharField(source="owner.username", read_only=True)
    venue = serializers.CharField(source="market.venue", read_only=True)
    symbol = serializers.CharField(source="market.symbol", read_only=True)
    shared_with = serializers.SerializerMethodField(help_text="usernames this bot is shared with (read-only)")
    risk_paused_by = serializers.ChoiceField(
        choices=[("", "nothing holds the bot risk-paused"), *RiskPausedBy.choices],
        read_only=True,
        help_text="what holds the bot risk-paused: empty, risk_sweep (auto-resume may clear it) or liquidation "
        "(the trader resumes)",
    )

    class Meta:
        model = Bot
        fields = [
            "id",
            "owner",
            "name",
            "exchange_account",
            "market",
            "venue",
            "symbol",
            "strategy",
            "params",
            "risk",
            "desired_state",
            "actual_state",
            "state_reason",
            "risk_paused_reason",
            "risk_paused_at",
            "risk_paused_by",
            "client_id_prefix",
            "auto_resume",
            "config_version",
            "shared_with",
            "created",
            "updated",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_shared_with(self, bot) -> list[str]:
        names = getattr(bot, "shared_usernames", None)  # annotated by the list query
        if names is None:
            names = sorted(u.username for u in bot.shared_with.all())
        return names


class BotWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    exchange_account = serializers.PrimaryKeyRelatedField(queryset=ExchangeAccount.objects.none(), required=True)
    market = serializers.PrimaryKeyRelatedField(queryset=market_list(), required=True)
    strategy = serializers.ChoiceField(choices=sorted([*STRATEGIES, HEDGED]))
    params = serializers.DictField(help_text="strategy parameters; see the strategy's description")
    risk = serializers.DictField(required=False, help_text="risk limits (trading.risk.RiskLimits fields)")
    auto_resume = serializers.BooleanField(required=False, default=False)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:
            self.fields["exchange_account"].queryset = exchange_account_list(user=user)


class ShareSerializer(serializers.Serializer):
    usernames = serializers.ListField(child=serializers.CharField(max_length=150), min_length=1, max_length=100)
    share = serializers.BooleanField(default=True, help_text="false takes access back")


class ManualOrderSerializer(serializers.Serializer):
    side = serializers.ChoiceField(choices=OrderSide.choices)
    price = serializers.CharField(max_length=60, help_text="plain decimal on the market's tick")
    quantity = serializers.CharField(max_length=60, help_text="plain decimal on the market's lot")
    type = serializers.ChoiceField(choices=["limit", "post_only"], default="limit")
    reduce_only = serializers.BooleanField(default=False)


class KillBotSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class BotConfigVersionSerializer(ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True, default=None)

    class Meta:
        model = BotConfigVersion
        fields = ["version", "strategy", "params", "risk", "author", "ts"]
        read_only_fields = fields


class BotEventSerializer(ModelSerializer):
    class Meta:
        model = BotEvent
        fields = ["ts", "kind", "code", "message", "data"]
        read_only_fields = fields


class BotFilter(filters.FilterSet):
    desired_state = filters.ChoiceFilter(choices=DesiredState.choices)
    actual_state = filters.ChoiceFilter(choices=ActualState.choices)
    strategy = filters.CharFilter()
    exchange_account = IdFilter(field_name="exchange_account_id")

    class Meta:
        model = Bot
        fields = ["desired_state", "actual_state", "strategy", "exchange_account"]


class EventQuerySerializer(serializers.Serializer):
    kind = serializers.CharField(required=False, max_length=32)
    start = QueryDateTimeField(required=False)
    end = QueryDateTimeField(required=False)


_LIST_COLUMNS = [f for f in BotSerializer.Meta.fields if f not in ("owner", "venue", "symbol", "shared_with")] + [
    "owner__username",
    "market__venue",
    "market__symbol",
]


class BotViewSet(viewsets.ModelViewSet):
    """Your bots and the bots shared with you (read-only). Another user's bot is a 404."""

    queryset = Bot.objects.none()
    serializer_class = BotSerializer
    lookup_value_regex = "[^/]+"  # ids like "0.5" reach the view and get a JSON 404
    permission_classes = [IsAuthenticated, CanTrade]  # CanTrade alone lets anonymous reads through
    filterset_class = BotFilter
    ordering_fields = ["id", "name", "created", "updated"]

    def get_queryset(self):
        # The viewers' names come with each bot row (a correlated array subquery): no query per
        # bot, and no second query for the page either.
        viewers = get_user_model().objects.filter(shared_bots=OuterRef("pk")).order_by("username").values("username")
        bots = bot_list(user=self.request.user).annotate(shared_usernames=ArraySubquery(viewers))
        if self.action == "list":
            # A list row shows the owner's name and the market's venue and symbol, and the
            # account only by id: load just those columns of the related rows (the whole owner,
            # account and market rows were most of the list's decoding work).
            bots = bots.select_related(None).select_related("owner", "market").only(*_LIST_COLUMNS)
        return bots

    def _changeable(self) -> Bot:
        bot = self.get_object()
        if not bot_can_change(user=self.request.user, bot=bot):
            raise exceptions.PermissionDenied("this bot is shared with you read-only; only its owner can change it")
        return bot

    @extend_schema(request=BotWriteSerializer, responses={201: BotSerializer})
    def create(self, request, *args, **kwargs):
        data = BotWriteSerializer(data=request.data, user=request.user)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        account = values.pop("exchange_account")
        with service_errors():
            bot = services.bot_create(owner=account.owner, actor=request.user, exchange_account=account, **values)
        return Response(BotSerializer(bot).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=BotWriteSerializer, responses=BotSerializer)
    def update(self, request, *args, **kwargs):
        bot = self._changeable()
        partial = kwargs.get("partial", False)
        data = BotWriteSerializer(data=request.data, partial=partial, user=request.user)
        data.is_valid(raise_exception=True)
        with service_errors():
            bot = services.bot_update_config(bot=bot, actor=request.user, **data.validated_data)
        return Response(BotSerializer(bot_list(user=request.user).get(pk=bot.pk)).data)

    @extend_schema(request=BotWriteSerializer, responses=BotSerializer)
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="the bot must be stopped first")})
    def destroy(self, request, *args, **kwargs):
        """Delete a stopped bot; a bot that runs (or has not stopped yet) is a 409."""
        from apps.accounts.errors import FieldErrors

        bot = self._changeable()
        try:
            services.bot_delete(bot=bot, actor=request.user)
        except FieldErrors as exc:
            return Response(exc.errors, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _lifecycle(self, request, service, **extra):
        bot = self._changeable()
        with service_errors():
            bot = service(bot=bot, actor=request.user, **extra)
        return Response(BotSerializer(bot_list(user=request.user).get(pk=bot.pk)).data)

    @extend_schema(request=None, responses=BotSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """Ask the bot to run."""
        return self._lifecycle(request, services.bot_start)

    @extend_schema(request=None, responses=BotSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """Ask a running bot to pause (quotes cancelled, position kept)."""
        return self._lifecycle(request, services.bot_pause)

    @extend_schema(request=None, responses=BotSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Ask a paused bot to quote again."""
        return self._lifecycle(request, services.bot_resume)

    @extend_schema(request=None, responses=BotSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        """Ask the bot to stop gracefully."""
        return self._lifecycle(request, services.bot_stop)

    @extend_schema(request=KillBotSerializer, responses=BotSerializer)
    @action(detail=True, methods=["post"])
    def kill(self, request, pk=None):
        """Stop at once, cancelling every order."""
        data = KillBotSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._lifecycle(request, services.bot_kill, reason=data.validated_data["reason"])

    @extend_schema(
        request=ManualOrderSerializer,
        responses={202: inline_serializer("ManualOrderSent", {"sent": serializers.DictField()})},
    )
    @action(detail=True, methods=["post"], url_path="manual-order")
    def manual_order(self, request, pk=None):
        """Send a manual order (limit or post-only, optionally reduce-only) through the bot's own
        loop and pre-trade risk; whether it was placed or refused is in the bot's event log."""
        from apps.bots.manual import bot_manual_order

        bot = self._changeable()
        data = ManualOrderSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        with service_errors():
            sent = bot_manual_order(
                bot=bot, actor=request.user, side=v["side"], price=v["price"], quantity=v["quantity"],
                order_type=v["type"], reduce_only=v["reduce_only"],
            )  # fmt: skip
        return Response({"sent": sent}, status=202)

    @extend_schema(
        request=None, responses={202: inline_serializer("HedgeResumeSent", {"sent": serializers.BooleanField()})}
    )
    @action(detail=True, methods=["post"], url_path="hedge-resume")
    def hedge_resume(self, request, pk=None):
        """A hedged bot: quote again after a hedge safety stop, flat or not (the trader's call)."""
        from apps.bots.hedged import hedge_resume

        bot = self._changeable()
        with service_errors():
            hedge_resume(bot=bot, actor=request.user)
        return Response({"sent": True}, status=202)

    @extend_schema(
        responses=inline_serializer(
            "HedgeAttribution",
            {
                "fills": serializers.ListField(),
                "distribution": serializers.DictField(),
                "count": serializers.IntegerField(),
            },
        )
    )
    @action(detail=True, methods=["get"], url_path="hedge-attribution", filterset_class=None, pagination_class=None)
    def hedge_attribution(self, request, pk=None):
        """A hedged bot's maker fills, each paired with its hedge fills: expected vs realized edge
        (quote currency), hedge slippage (bps, positive = worse), hedge latency (ms); newest 200
        rows and the distribution over all of them."""
        from apps.bots.hedged import attribution

        return Response(attribution(self.get_object()))

    @extend_schema(request=ShareSerializer, responses=BotSerializer)
    @action(detail=True, methods=["post"])
    def share(self, request, pk=None):
        """Give (or take back) read-only access to other users."""
        bot = self._changeable()
        data = ShareSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        names = set(data.validated_data["usernames"])
        users = list(get_user_model().objects.filter(username__in=names, is_active=True))
        missing = names - {u.username for u in users}
        if missing:
            raise exceptions.ValidationError({"usernames": [f"no such user: {', '.join(sorted(missing))}"]})
        with service_errors():
            services.bot_share(bot=bot, actor=request.user, users=users, share=data.validated_data["share"])
        return Response(BotSerializer(bot_list(user=request.user).get(pk=bot.pk)).data)

    @extend_schema(responses=BotConfigVersionSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="config-history", filterset_class=None, pagination_class=None)
    def config_history(self, request, pk=None):
        """Every configuration version, newest first."""
        versions = bot_config_history(bot=self.get_object())
        return Response(BotConfigVersionSerializer(versions, many=True).data)

    @extend_schema(
        responses={
            200: OpenApiResponse(description="a perpetual bot's position, margin, liquidation and funding figures"),
            404: OpenApiResponse(description="not a running perpetual bot"),
        }
    )
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def perp(self, request, pk=None):
        """A running perpetual bot's figures (decimal strings; money in the settle currency)."""
        from apps.dashboard.perp import bot_perp

        figures = bot_perp(bot_id=self.get_object().pk)
        if figures is None:
            raise exceptions.NotFound("no perpetual figures: the bot is not a running perpetual bot")
        return Response(figures)

    @extend_schema(parameters=[EventQuerySerializer], responses=BotEventSerializer(many=True))
    @action(detail=True, methods=["get"], filterset_class=None, ordering_fields=[])
    def events(self, request, pk=None):
        """The bot's events, newest first (filter by kind and time range [start, end))."""
        bot = self.get_object()
        query = EventQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        events = bot_event_list(bot=bot, **query.validated_data)
        page = self.paginate_queryset(events)
        return self.get_paginated_response(BotEventSerializer(page, many=True).data)


class KillAllView(APIView):
    """Operators only: kill every active bot and turn on the kill switch of their accounts."""

    permission_classes = [IsOperator]

    @extend_schema(
        request=KillBotSerializer,
        responses=inline_serializer("KillAllResult", {"bots_killed": serializers.IntegerField()}),
    )
    def post(self, request):
        data = KillBotSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with service_errors(), transaction.atomic():
            killed = controls.global_kill_switch(actor=request.user, reason=data.validated_data["reason"])
        return Response({"bots_killed": killed})
