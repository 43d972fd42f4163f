"""REST API of parameter optimisations: create (queued), list, retrieve with progress and
results, cancel, and apply the recommended parameters to a bot (a new config version)."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from apps.core.serializers import ModelSerializer
from apps.research import selectors, services
from apps.research.models import Optimisation, UserRecording


class OptimisationSerializer(ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = Optimisation
        fields = [
            "id", "owner", "name", "strategy", "base_params", "search_space", "sampler", "objective",
            "constraints", "recording", "max_events", "folds", "n_trials", "parallel", "oos_min", "status",
            "fold", "trials_done", "progress", "eta_seconds", "results", "error", "created", "started", "finished",
        ]  # fmt: skip
        read_only_fields = fields


class OptimisationCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    strategy = serializers.CharField(max_length=64)
    params = serializers.JSONField(required=False, default=dict)
    search_space = serializers.JSONField()
    sampler = serializers.CharField(required=False, default="tpe")
    objective = serializers.CharField(max_length=40)
    constraints = serializers.JSONField(required=False, default=dict)
    recording = serializers.CharField(max_length=64)
    max_events = serializers.IntegerField(required=False, allow_null=True, min_value=1_000, max_value=50_000_000)
    folds = serializers.IntegerField(required=False, default=0, min_value=0, max_value=12)
    n_trials = serializers.IntegerField(min_value=1, max_value=2_000)
    parallel = serializers.IntegerField(required=False, default=2, min_value=1, max_value=16)
    oos_min = serializers.CharField(required=False, allow_null=True, max_length=40)


class ApplySerializer(serializers.Serializer):
    bot = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class OptimisationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Optimisations of the signed-in user (operators: everyone's)."""

    ordering_fields = ["created", "name"]
    ordering = ["-created"]

    lookup_value_regex = "[^/]+"
    serializer_class = OptimisationSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Optimisation.objects.none()
        return selectors.optimisation_list(user=self.request.user)

    def get_object(self) -> Optimisation:
        opt = selectors.optimisation_get(user=self.request.user, opt_id=self.kwargs["pk"])
        if opt is None:
            raise NotFound("optimisation not found")
        return opt

    @extend_schema(request=OptimisationCreateSerializer, responses={201: OptimisationSerializer})
    def create(self, request, *args, **kwargs):
        data = OptimisationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            opt = services.optimisation_create(owner=request.user, data=dict(data.validated_data))
        except services.OptimisationInputError as exc:
            raise ValidationError(exc.errors)
        return Response(OptimisationSerializer(opt).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: OptimisationSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        opt = services.optimisation_cancel(optimisation=self.get_object())
        return Response(OptimisationSerializer(opt).data)

    @extend_schema(
        request=ApplySerializer,
        responses={200: OpenApiResponse(description="the bot's new config version"), 409: OpenApiResponse()},
    )
    @action(detail=True, methods=["post"])
    def apply(self, request, pk=None):
        from apps.accounts.errors import FieldErrors
        from apps.bots.selectors import bot_can_change, bot_list

        opt = self.get_object()
        data = ApplySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        best = (opt.results or {}).get("best")
        if not best:
            reason = (opt.results or {}).get("best_refused") or f"the optimisation is {opt.status}"
            return Response({"best": [f"no recommended parameters: {reason}"]}, status=status.HTTP_409_CONFLICT)
        bot = bot_list(user=request.user).filter(pk=data.validated_data["bot"]).first()
        if bot is None or not bot_can_change(user=request.user, bot=bot):
            raise NotFound("bot not found")
        try:
            version = services.optimisation_apply(optimisation=opt, bot=bot, actor=request.user)
        except FieldErrors as exc:
            raise ValidationError(exc.errors)
        return Response({"bot": bot.pk, "config_version": version, "params": best})


class RecordingSerializer(ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    market = serializers.CharField(source="market.__str__", read_only=True)
    backtest_name = serializers.SerializerMethodField()

    class Meta:
        model = UserRecording
        fields = [
            "id", "owner", "name", "market", "backtest_name", "size_bytes", "first_ts", "last_ts", "lines",
            "counts", "bad_lines", "bad_samples", "bad_reasons", "gaps", "unsynced_seconds", "source", "created",
        ]  # fmt: skip
        read_only_fields = fields

    def get_backtest_name(self, obj) -> str:
        return f"user:{obj.pk}"


class RecordingUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    market = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    files = serializers.ListField(child=serializers.FileField(), min_length=1, max_length=100)


class RecordingViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Recordings the user uploaded (operators: everyone's); backtests take ``user:<id>``."""

    ordering_fields = ["created", "name"]
    ordering = ["-created"]

    lookup_value_regex = "[^/]+"
    serializer_class = RecordingSerializer
    parser_classes = [MultiPartParser]  # files travel as multipart; anything else is a 415

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return UserRecording.objects.none()
        return selectors.recording_list(user=self.request.user)

    def get_object(self) -> UserRecording:
        rec = selectors.recording_get(user=self.request.user, rec_id=self.kwargs["pk"])
        if rec is None:
            raise NotFound("recording not found")
        return rec

    @extend_schema(request={"multipart/form-data": RecordingUploadSerializer}, responses={201: RecordingSerializer})
    def create(self, request, *args, **kwargs):
        from apps.exchanges.models import Market
        from apps.research.recordings import RecordingRefused, register

        if not request.user.can_trade:
            return Response({"detail": "viewers cannot upload recordings"}, status=status.HTTP_403_FORBIDDEN)
        try:
            fields = {key: request.data.get(key) for key in ("name", "market")}
            files = request.FILES.getlist("files")
        except (TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig) as exc:
            raise ValidationError({"files": [f"{exc}; accepted: at most 100 files within the request size limit"]})
        data = RecordingUploadSerializer(data={**fields, "files": files})
        data.is_valid(raise_exception=True)
        market = Market.objects.filter(pk=data.validated_data["market"]).first()
        if market is None:
            raise ValidationError(
                {"market": [f"{data.validated_data['market']} is not a market id; see /api/v1/markets/"]}
            )
        uploads = [(f.name, f) for f in data.validated_data["files"]]
        try:
            rec = register(owner=request.user, name=data.validated_data["name"], market=market, uploads=uploads)
        except RecordingRefused as exc:
            raise ValidationError(exc.errors)
        return Response(RecordingSerializer(rec).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: UserRecording) -> None:
        import shutil

        from apps.research.recordings import recording_paths

        folders = {p.parent for p in recording_paths(instance)}
        instance.delete()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
