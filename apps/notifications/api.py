"""REST API of notifications: channels (secrets write-only), rules, the delivery log
(read-only) and ``POST channels/{id}/test/``. Another user's object is a 404."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from apps.accounts.api_support import CanTrade
from apps.core.serializers import ModelSerializer
from apps.notifications import selectors, services
from apps.notifications.models import ChannelKind, Delivery, EventKind, NotificationChannel, NotificationRule


@extend_schema_field({"type": "string", "enum": ChannelKind.values, "description": "channel kind"})
class ChannelKindField(serializers.ChoiceField):
    """Channel kind; its enum is inlined in the schema (``kind`` also names exchange-account kinds)."""

    def __init__(self, **kwargs):
        super().__init__(choices=ChannelKind.choices, **kwargs)


class ChannelSerializer(ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    kind = ChannelKindField()
    config = serializers.JSONField(
        help_text=(
            "email: {address}; telegram: {chat_id}; webhook: {url}; discord: {url} on write "
            "(stored encrypted), shown as {url_hint}"
        ),
        required=False,
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=True,
        style={"input_type": "password"},
        help_text="Telegram bot token (digits:letters) or webhook HMAC secret; write-only",
    )
    has_secret = serializers.BooleanField(read_only=True)
    # Checked by the service (a clear message); the bounds are documented here.
    rate_limit_per_minute = extend_schema_field({"type": "integer", "minimum": 1, "maximum": services.MAX_RATE_LIMIT})(
        serializers.IntegerField(
            required=False, help_text=f"deliveries a minute at most, 1 to {services.MAX_RATE_LIMIT}"
        )
    )

    class Meta:
        model = NotificationChannel
        fields = [
            "id",
            "owner",
            "kind",
            "name",
            "config",
            "secret",
            "has_secret",
            "enabled",
            "rate_limit_per_minute",
            "created",
        ]
        read_only_fields = ["id", "owner", "has_secret", "created"]
        extra_kwargs = {"name": {"validators": []}}


class RuleSerializer(ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    event_kind = serializers.ChoiceField(choices=[c for c in EventKind.choices if c[0] != EventKind.TEST])

    class Meta:
        model = NotificationRule
        fields = ["id", "owner", "event_kind", "bot", "threshold", "channels", "enabled", "created"]
        read_only_fields = ["id", "owner", "created"]

    def get_fields(self):
        from apps.bots.selectors import bot_list

        fields = super().get_fields()
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            # Only the requester's own channels and visible bots resolve; others are "does not exist".
            fields["channels"].child_relation.queryset = NotificationChannel.objects.filter(owner=user)
            fields["bot"].queryset = bot_list(user=user)
        return fields


class DeliverySerializer(ModelSerializer):
    channel_name = serializers.CharField(source="channel.name", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "channel",
            "channel_name",
            "rule",
            "event_kind",
            "dedupe_key",
            "payload",
            "status",
            "attempts",
            "last_error",
            "created",
            "sent_at",
        ]
        read_only_fields = fields


def _input_error(exc: services.NotificationInputError) -> ValidationError:
    return ValidationError(exc.errors)


class ChannelViewSet(viewsets.ModelViewSet):
    """Your notification channels (operators: everyone's). Viewers may read, not write."""

    permission_classes = [IsAuthenticated, CanTrade]

    lookup_value_regex = "[^/]+"  # ids like "0.5" reach the view and get a JSON 404
    serializer_class = ChannelSerializer
    filterset_fields = ["kind", "enabled"]
    ordering_fields = ["id", "name", "created"]
    ordering = ["id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return NotificationChannel.objects.none()
        return selectors.channel_list(user=self.request.user)

    def perform_create(self, serializer):
        data = serializer.validated_data
        try:
            serializer.instance = services.channel_create(
                owner=self.request.user,
                kind=data["kind"],
                name=data["name"],
                config=data.get("config", {}),
                secret=data.get("secret", ""),
                enabled=data.get("enabled", True),
                rate_limit_per_minute=data.get("rate_limit_per_minute", 20),
            )
        except services.NotificationInputError as exc:
            raise _input_error(exc)

    def perform_update(self, serializer):
        data = serializer.validated_data
        channel = serializer.instance
        if "kind" in data and data["kind"] != channel.kind:
            raise ValidationError({"kind": f"cannot change from {channel.kind}; create a new channel instead"})
        try:
            serializer.instance = services.channel_update(
                channel=channel,
                name=data.get("name"),
                config=data.get("config"),
                secret=data.get("secret") or None,
                enabled=data.get("enabled"),
                rate_limit_per_minute=data.get("rate_limit_per_minute"),
            )
        except services.NotificationInputError as exc:
            raise _input_error(exc)

    def perform_destroy(self, instance):
        services.channel_delete(channel=instance)

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Queue a test message to this channel."""
        delivery = services.channel_send_test(channel=self.get_object())
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class RuleViewSet(viewsets.ModelViewSet):
    """Your notification rules (operators: everyone's). Viewers may read, not write."""

    permission_classes = [IsAuthenticated, CanTrade]

    lookup_value_regex = "[^/]+"  # ids like "0.5" reach the view and get a JSON 404
    serializer_class = RuleSerializer
    filterset_fields = ["event_kind", "enabled", "bot"]
    ordering_fields = ["id", "event_kind", "created"]
    ordering = ["id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return NotificationRule.objects.none()
        return selectors.rule_list(user=self.request.user)

    def perform_create(self, serializer):
        data = serializer.validated_data
        try:
            serializer.instance = services.rule_create(
                owner=self.request.user,
                event_kind=data["event_kind"],
                channels=data.get("channels", []),
                bot=data.get("bot"),
                threshold=data.get("threshold"),
                enabled=data.get("enabled", True),
            )
        except services.NotificationInputError as exc:
            raise _input_error(exc)

    def perform_update(self, serializer):
        data = serializer.validated_data
        kwargs = {key: data[key] for key in ("event_kind", "channels", "bot", "threshold", "enabled") if key in data}
        try:
            serializer.instance = services.rule_update(rule=serializer.instance, **kwargs)
        except services.NotificationInputError as exc:
            raise _input_error(exc)

    def perform_destroy(self, instance):
        services.rule_delete(rule=instance)


class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The delivery log of your channels (read-only)."""

    lookup_value_regex = "[^/]+"  # ids like "0.5" reach the view and get a JSON 404
    serializer_class = DeliverySerializer
    filterset_fields = ["status", "event_kind", "channel"]
    ordering_fields = ["created", "sent_at", "status"]
    ordering = ["-created"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Delivery.objects.none()
        return selectors.delivery_list(user=self.request.user)

    def get_object(self):
        try:
            return self.get_queryset().get(pk=int(self.kwargs["pk"]))
        except (Delivery.DoesNotExist, ValueError):
            raise NotFound("delivery not found")
