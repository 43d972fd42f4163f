"""REST API of the portfolio inventory: the net per asset over all of a user's accounts and bots
(``GET portfolio/inventory/``) and the user's targets, limits and hedge settings per asset
(``portfolio/targets/``). Scoped to the user; operators see every user's (read-only for others')."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api_support import CanTrade, service_errors
from apps.core.serializers import ModelSerializer
from apps.portfolio.inventory import inventory_list
from apps.portfolio.models import InventoryTarget
from apps.portfolio.targets import inventory_target_delete, inventory_target_set

MONEY = {"max_digits": 38, "decimal_places": 18, "allow_null": True}


class InventorySourceSerializer(serializers.Serializer):
    account = serializers.IntegerField()
    label = serializers.CharField()
    venue = serializers.CharField()
    kind = serializers.ChoiceField(choices=["spot", "perp"])
    qty = serializers.DecimalField(**MONEY)


class InventoryAssetSerializer(serializers.Serializer):
    asset = serializers.CharField()
    spot = serializers.DecimalField(**MONEY, help_text="spot balances over the accounts, base units")
    perp = serializers.DecimalField(**MONEY, help_text="perpetual positions from fills, base units")
    net = serializers.DecimalField(**MONEY, help_text="spot + perp, base units")
    quote = serializers.CharField()
    mark = serializers.DecimalField(**MONEY, help_text="mid in the quote currency; null when unknown")
    value = serializers.DecimalField(**MONEY, help_text="net x mark; null when the mark is unknown")
    target = serializers.DecimalField(**MONEY)
    deviation = serializers.DecimalField(**MONEY, help_text="net - target")
    max_net = serializers.DecimalField(**MONEY, help_text="limit on |net|")
    usage = serializers.DecimalField(**MONEY, help_text="|net| / max_net")
    breached = serializers.BooleanField()
    band = serializers.DecimalField(**MONEY)
    in_band = serializers.BooleanField(allow_null=True)
    hedge_enabled = serializers.BooleanField()
    hedge_bot = serializers.IntegerField(allow_null=True)
    sources = InventorySourceSerializer(many=True)


class InventorySerializer(serializers.Serializer):
    owner = serializers.IntegerField()
    username = serializers.CharField()
    quote = serializers.CharField()
    assets = InventoryAssetSerializer(many=True)


class InventoryQuerySerializer(serializers.Serializer):
    owner = serializers.IntegerField(required=False, min_value=1, help_text="operators: one user's inventory")


class InventoryView(APIView):
    """Net inventory per asset over all your accounts and bots, with target, deviation and limit usage."""

    @extend_schema(parameters=[InventoryQuerySerializer], responses=InventorySerializer(many=True))
    def get(self, request):
        query = InventoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = inventory_list(user=request.user, owner_id=query.validated_data.get("owner"))
        return Response(InventorySerializer(data, many=True).data)


class InventoryTargetSerializer(ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    asset = serializers.CharField(max_length=32, help_text="asset code, e.g. BTC (stored upper-case)")
    target = serializers.CharField(required=False, help_text="target net, base units (plain decimal, may be < 0)")
    max_net = serializers.CharField(
        required=False, allow_null=True, help_text="limit on |net|, base units (> 0), null for none"
    )
    band = serializers.CharField(
        required=False, allow_null=True, help_text="hedge band: |net - target| kept within it (> 0)"
    )
    hedge_bot = serializers.IntegerField(
        required=False, allow_null=True, help_text="your bot whose account and market the hedge order goes through"
    )

    class Meta:
        model = InventoryTarget
        fields = ["id", "owner", "asset", "target", "max_net", "band", "hedge_enabled", "hedge_bot", "updated_at"]
        read_only_fields = ["id", "owner", "updated_at"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["hedge_bot"] = instance.hedge_bot_id
        for name in ("target", "max_net", "band"):
            value = getattr(instance, name)
            data[name] = None if value is None else f"{value.normalize():f}"
        return data


class InventoryTargetViewSet(viewsets.ModelViewSet):
    """Your inventory targets per asset: target net, the risk limit on the net, the hedge band and
    the optional portfolio hedge (off by default). Writes are refused field by field."""

    queryset = InventoryTarget.objects.none()
    serializer_class = InventoryTargetSerializer
    permission_classes = [IsAuthenticated, CanTrade]
    lookup_value_regex = "[^/]+"
    filterset_fields = ["asset"]
    ordering_fields = ["asset", "updated_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        qs = InventoryTarget.objects.select_related("owner")
        if not self.request.user.is_operator:
            qs = qs.filter(owner=self.request.user)
        return qs.order_by("owner_id", "asset")

    def get_object(self):
        pk = self.kwargs.get("pk", "")
        if not str(pk).isdigit():
            raise exceptions.NotFound("no such target")
        return super().get_object()

    def _writable(self, target: InventoryTarget) -> None:
        if target.owner_id != self.request.user.pk:
            raise exceptions.PermissionDenied("only the owner changes a target")

    def _save(self, request, owner, asset):
        fields = {
            k: request.data[k] for k in ("target", "max_net", "band", "hedge_enabled", "hedge_bot") if k in request.data
        }
        with service_errors():
            return inventory_target_set(owner=owner, actor=request.user, asset=asset, **fields)

    @extend_schema(responses={201: InventoryTargetSerializer})
    def create(self, request, *args, **kwargs):
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError({"non_field_errors": ["a JSON object is expected"]})
        target = self._save(request, request.user, request.data.get("asset"))
        return Response(self.get_serializer(target).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        target = self.get_object()
        self._writable(target)
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError({"non_field_errors": ["a JSON object is expected"]})
        if "asset" in request.data and str(request.data["asset"]).strip().upper() != target.asset:
            raise exceptions.ValidationError(
                {
                    "asset": [
                        f"{request.data['asset']!r} is not accepted; accepted: {target.asset} (create a new target)"
                    ]
                }
            )
        target = self._save(request, target.owner, target.asset)
        return Response(self.get_serializer(target).data)

    def destroy(self, request, *args, **kwargs):
        target = self.get_object()
        self._writable(target)
        inventory_target_delete(target=target, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
