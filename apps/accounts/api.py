from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import throttle
from apps.accounts.models import AuditAction, AuditLog
from apps.accounts.selectors import audit_log_list
from apps.accounts.services import audit_record
from apps.core.clientaddr import audit_address
from apps.core.jsondepth import JSONParser


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"})


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField(help_text="an email address, or empty when none is set")
    role = serializers.CharField()
    is_operator = serializers.BooleanField()


class ObtainTokenView(APIView):
    """Exchange a username and password for an API token (throttled like the sign-in page)."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={200: inline_serializer("TokenResponse", {"token": serializers.CharField()})},
    )
    def post(self, request):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        username = data.validated_data["username"]
        user = authenticate(request, username=username, password=data.validated_data["password"])
        refusal = throttle.refusal_of(request)
        if user is None and refusal is not None:
            return Response(
                {"detail": refusal.message(), "code": "locked_out" if refusal.reason == "locked" else "rate_limited"},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(refusal.seconds)},
            )
        if user is None:
            return Response(
                {"detail": "username or password is wrong.", "code": "invalid_credentials"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        token, _ = Token.objects.get_or_create(user=user)
        throttle.record_success(user.get_username(), throttle.client_address(request))
        audit_record(
            action=AuditAction.LOGIN,
            actor=user,
            owner=user,
            obj=user,
            ip=audit_address(request),
            message="API token issued",
        )
        return Response({"token": token.key})


class MeView(APIView):
    """The signed-in user."""

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        user = request.user
        return Response(
            MeSerializer(
                {
                    "id": user.pk,
                    "username": user.username,
                    "email": user.email,
                    "role": user.role,
                    "is_operator": user.is_operator,
                }
            ).data
        )


class AuditLogSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    ts = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_name")
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    ip = serializers.IPAddressField(allow_null=True)
    message = serializers.CharField()


class AuditLogViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit log: operators see every entry, others their own actions and their objects'."""

    queryset = AuditLog.objects.none()
    serializer_class = AuditLogSerializer
    lookup_value_regex = "[^/]+"  # ids like "0.5" reach the view and get a JSON 404
    filterset_fields = ["action", "object_type", "object_id"]
    ordering_fields = ["ts", "id"]

    def get_queryset(self):
        return audit_log_list(user=self.request.user)
