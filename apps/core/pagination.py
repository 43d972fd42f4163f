from django.db.models import Count, QuerySet, Window
from django.db.models.query import ModelIterable
from rest_framework.pagination import LimitOffsetPagination

_TOTAL = "_mm_page_total"
_MAX_ROW = 2**62


def _can_count_in_page(queryset) -> bool:
    """A plain model queryset whose row count a ``COUNT(*) OVER ()`` on the page query gives."""
    if not isinstance(queryset, QuerySet) or queryset._iterable_class is not ModelIterable:
        return False
    query = queryset.query
    return not (query.distinct or query.combinator or query.group_by is not None or query.is_sliced)


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """Limit/offset pages of at most ``max_limit`` rows: a huge ``?limit=`` cannot make one
    request read a whole time-series table.

    The ``count`` comes with the page: ``COUNT(*) OVER ()`` is computed over every matching row
    before the LIMIT, so the page and the total are one query instead of DRF's two (a COUNT,
    then the page). Only when the page is empty (no rows, or an offset past the end) is a
    separate COUNT run, as DRF does."""

    default_limit = 50
    max_limit = 1000

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
