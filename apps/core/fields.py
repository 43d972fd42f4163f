"""Serializer fields shared by the API."""

from __future__ import annotations

from datetime import UTC, datetime

from rest_framework import serializers

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class QueryDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time for a query range, between 1970 and 2100: times far outside it cannot be
    real market data, and date arithmetic on them (a default span before ``end``) would overflow."""

    def to_internal_value(self, value):
        moment = super().to_internal_value(value)
        if not EARLIEST <= moment < LATEST:
            raise serializers.ValidationError(f"{value!r} is out of range; accepted: a time from 1970 to 2099")
        return moment
