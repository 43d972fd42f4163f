"""REST API of simulator profiles: fit one from a bot's own orders (POST), list and read them."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from apps.accounts.api_support import CanTrade, service_errors
from apps.bots.models import Bot
from apps.core.serializers import ModelSerializer
from apps.research.models import SimulatorProfile
from apps.research.profiles import QUEUE_MODELS, profile_fit_from_bot, profile_get, profile_list, profile_summary


class SimulatorProfileSerializer(ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    summary = serializers.SerializerMethodField()

    class Meta:
        model = SimulatorProfile
        fields = [
            "id", "owner", "name", "bot", "start", "end", "place_ack_ns", "cancel_ack_ns", "place_samples",
            "cancel_samples", "cancel_source", "queue_model", "queue_power", "live", "summary", "created",
        ]  # fmt: skip
        read_only_fields = fields

    def get_summary(self, obj: SimulatorProfile) -> dict:
        return profile_summary(obj)


class ProfileFitSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    bot = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    queue_model = serializers.ChoiceField(choices=QUEUE_MODELS, required=False, default="risk_averse")
    queue_power = serializers.FloatField(required=False, allow_null=True, default=None)


class SimulatorProfileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Simulator profiles of the signed-in user (operators: everyone's)."""

    ordering_fields = ["created", "name"]
    ordering = ["-created"]

    lookup_value_regex = "[^/]+"
    serializer_class = SimulatorProfileSerializer
    permission_classes = [*viewsets.GenericViewSet.permission_classes, CanTrade]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return SimulatorProfile.objects.none()
        return profile_list(user=self.request.user)

    def get_object(self) -> SimulatorProfile:
        raw = self.kwargs["pk"]
        profile = profile_get(user=self.request.user, profile_id=int(raw)) if raw.isdigit() and len(raw) < 19 else None
        if profile is None:
            raise NotFound("simulator profile not found")
        return profile

    @extend_schema(request=ProfileFitSerializer, responses={201: SimulatorProfileSerializer})
    def create(self, request, *args, **kwargs):
        body = ProfileFitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        try:
            with service_errors():
                profile = profile_fit_from_bot(user=request.user, bot_id=data.pop("bot"), **data)
        except Bot.DoesNotExist:
            raise ValidationError({"bot": ["not one of your bots; accepted: an id from /api/v1/bots/"]}) from None
        return Response(SimulatorProfileSerializer(profile).data, status=status.HTTP_201_CREATED)
