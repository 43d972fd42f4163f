"""The API's django-filter backend, without its per-request fixed costs, and strict about what
it accepts.

django-filter builds a ``FilterSet`` class on *every* request for views that list
``filterset_fields`` (a metaclass walking the model's fields), and binds a form even when the
request has no filter parameter at all. Here the generated class is made once per view class,
and a request that names none of the filters (and a filter set with no required filter) gets
the queryset unchanged, which is exactly what the bound empty form would have produced.

Filter parameters are checked as the OpenAPI schema documents them (``docs/web.md``): a
single-valued filter given twice and a boolean other than ``true``/``false`` are a 400 (django-
filter used the last value, and read ``null`` or ``abc`` as "no filter"). An empty value is the
same as leaving the parameter out. ``?ordering=`` takes the view's ``ordering_fields`` only
(:class:`OrderingFilter`; DRF dropped unknown names silently). Filters on a related object (``?account=``) take an id
(:class:`IdFilter`): an unknown id or another user's matches nothing, as for any other filter,
instead of django-filter's "Select a valid choice" (which told apart ids that exist).
"""

from __future__ import annotations

import re

from django import forms
from django.db import models
from django_filters import rest_framework as filters
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field
from rest_framework import filters as drf_filters
from rest_framework.exceptions import ValidationError

MAX_ID = 2**63 - 1


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(filters.NumberFilter):
    """An object id: a whole number from 1 to 2^63-1."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class FilterSet(filters.FilterSet):
    FILTER_DEFAULTS = {
        **filters.FilterSet.FILTER_DEFAULTS,
        models.ForeignKey: {"filter_class": IdFilter},
        models.OneToOneField: {"filter_class": IdFilter},
    }


def _check_values(filters_by_name: dict, params) -> None:
    errors = {}
    for name, flt in filters_by_name.items():
        values = params.getlist(name)
        if len(values) > 1 and not isinstance(flt, (filters.MultipleChoiceFilter, filters.BaseCSVFilter)):
            errors[name] = [f"given {len(values)} times ({', '.join(map(repr, values))}); give it once"]
        elif isinstance(flt, filters.BooleanFilter) and values and values[0] not in ("", "true", "false"):
            errors[name] = [f"{values[0][:40]!r} is not accepted; accepted: true or false"]
    if errors:
        raise ValidationError(errors)


def _without_empty(params):
    """The query parameters without empty values: ``?x=`` is the same as no ``x``."""
    if not any("" in params.getlist(name) for name in params) and "" not in params:
        return params
    data = params.copy()
    for name in list(data):
        values = [value for value in data.getlist(name) if value != ""]
        if values:
            data.setlist(name, values)
        else:
            del data[name]
    return data


class FilterBackend(DjangoFilterBackend):
    filterset_base = FilterSet
    _generated: dict = {}

    def get_filterset_kwargs(self, request, queryset, view):
        return {**super().get_filterset_kwargs(request, queryset, view), "data": _without_empty(request.query_params)}

    def get_filterset_class(self, view, queryset=None):
        if getattr(view, "filterset_class", None) is not None or queryset is None:
            return super().get_filterset_class(view, queryset)
        key = (type(view), queryset.model)
        filterset_class = self._generated.get(key)
        if filterset_class is None:
            filterset_class = super().get_filterset_class(view, queryset)
            self._generated[key] = filterset_class
        return filterset_class

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        filters_by_name = filterset_class.base_filters
        params = _without_empty(request.query_params)
        if not any(name in params for name in filters_by_name) and not any(
            f.extra.get("required") for f in filters_by_name.values()
        ):
            return queryset
        _check_values(filters_by_name, params)
        return super().filter_queryset(request, queryset, view)


class OrderingFilter(drf_filters.OrderingFilter):
    """DRF's ordering, refusing names that are not in the view's ``ordering_fields`` with a 400
    (and a schema pattern listing them), instead of ignoring them."""

    @staticmethod
    def _names(view) -> list[str] | None:
        fields = getattr(view, "ordering_fields", None)
        if not isinstance(fields, (list, tuple)):
            return None  # "__all__" or the serializer's fields: DRF's own rules
        return [item if isinstance(item, str) else item[0] for item in fields]

    def get_ordering(self, request, queryset, view):
        names = self._names(view)
        values = [v for v in request.query_params.getlist(self.ordering_param) if v != ""]
        if names is None or not values:
            return super().get_ordering(request, queryset, view)
        accepted = f"accepted: comma-separated names from {', '.join(names) or '(none)'}, each may start with '-'"
        if len(values) > 1:
            raise ValidationError({self.ordering_param: [f"given {len(values)} times; give it once; {accepted}"]})
        terms = values[0].split(",")
        for term in terms:
            if term.removeprefix("-") not in names:
                raise ValidationError({self.ordering_param: [f"{term[:40]!r} is not accepted; {accepted}"]})
        return terms

    def get_schema_operation_parameters(self, view):
        names = self._names(view)
        if names is None:
            return super().get_schema_operation_parameters(view)
        if not names:
            return []
        term = "-?(?:" + "|".join(re.escape(name) for name in names) + ")"
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": f"Sort by these fields (comma-separated; '-' for descending): {', '.join(names)}.",
                "schema": {"type": "string", "pattern": f"^{term}(?:,{term})*$"},
            }
        ]
