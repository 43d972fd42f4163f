from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from apps.core.health import check_health


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Health as JSON; HTTP 200 when everything required is up, 503 otherwise."""
    report = check_health()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
