from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """Limit/offset pages of at most ``max_limit`` rows: a huge ``?limit=`` cannot make one
    request read a whole time-series table."""

    default_limit = 50
    max_limit = 1000
