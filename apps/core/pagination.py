import re

from django.db.models import Count, QuerySet, Window
from django.db.models.query import ModelIterable
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

_TOTAL = "_mm_page_total"
_MAX_ROW = 2**62
MAX_OFFSET = 2**63 - 1  # SQL's bigint; any offset past a table's end gives an empty page
_DIGITS = re.compile(r"[0-9]{1,19}")


def _can_count_in_page(queryset) -> bool:
    """A plain model queryset whose row count a ``COUNT(*) OVER ()`` on the page query gives."""
    if not isinstance(queryset, QuerySet) or queryset._iterable_class is not ModelIterable:
        return False
    query = queryset.query
    return not (query.distinct or query.combinator or query.group_by is not None or query.is_sliced)


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """Limit/offset pages of at most ``max_limit`` rows: a huge ``?limit=`` cannot make one
    request read a whole time-series table.

    ``limit`` and ``offset`` are checked as the schema documents them: plain decimal digits,
    given at most once, ``limit`` from 1 to ``max_limit``, ``offset`` from 0 to 2^63-1; anything
    else is a 400 naming the parameter, the value and what is accepted (DRF silently used the
    default for ``?limit=abc`` or ``?offset=null&offset=null``).

    The ``count`` comes with the page: ``COUNT(*) OVER ()`` is computed over every matching row
    before the LIMIT, so the page and the total are one query instead of DRF's two (a COUNT,
    then the page). Only when the page is empty (no rows, or an offset past the end) is a
    separate COUNT run, as DRF does."""

    default_limit = 50
    max_limit = 1000

    def _parameter(self, request, name: str, default: int, minimum: int, maximum: int) -> int:
        values = request.query_params.getlist(name)
        if not values or values == [""]:  # empty: as if not given
            return default
        accepted = f"accepted: a whole number from {minimum} to {maximum}, given once"
        if len(values) > 1:
            raise ValidationError({name: [f"given {len(values)} times ({', '.join(map(repr, values))}); {accepted}"]})
        raw = values[0]
        if not _DIGITS.fullmatch(raw) or not minimum <= int(raw) <= maximum:
            raise ValidationError({name: [f"{raw[:40]!r} is not accepted; {accepted}"]})
        return int(raw)

    def get_limit(self, request):
        return self._parameter(request, self.limit_query_param, self.default_limit, 1, self.max_limit)

    def get_offset(self, request):
        return self._parameter(request, self.offset_query_param, 0, 0, MAX_OFFSET)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit, "default": self.default_limit},
            self.offset_query_param: {"minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters

    def paginate_queryset(self, queryset, request, view=None):
        if not _can_count_in_page(queryset):
            return super().paginate_queryset(queryset, request, view)
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        self.offset = self.get_offset(request)
        if self.offset + self.limit > _MAX_ROW:  # past any table's end (and past SQL's bigint)
            page = []
        else:
            page = list(queryset.annotate(**{_TOTAL: Window(Count("*"))})[self.offset : self.offset + self.limit])
        self.count = getattr(page[0], _TOTAL) if page else self.get_count(queryset)
        if self.count > self.limit and self.template is not None:
            self.display_page_controls = True
        return page
