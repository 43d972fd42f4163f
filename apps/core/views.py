from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from apps.core.health import check_health

PUBLIC_KEYS = ("up", "present", "count")


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Health as JSON; HTTP 200 when everything required is up, 503 otherwise.

    Anyone (a load balancer, a monitor) sees which parts are up; the details — error texts,
    worker names and queues — only operators."""
    report = check_health()
    user = getattr(request, "user", None)
    if not (user is not None and user.is_authenticated and user.is_staff):
        report = {
            "status": report["status"],
            "checks": {
                name: {key: value for key, value in check.items() if key in PUBLIC_KEYS}
                for name, check in report["checks"].items()
            },
        }
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
