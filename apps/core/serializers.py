"""``ModelSerializer`` with the per-request fixed costs of DRF taken out.

1. Fields are built once per class. DRF's ``ModelSerializer.get_fields`` introspects the model
   and builds every field on each instantiation, i.e. on every API request (~0.36 ms for the bot
   serializer). The fields depend only on the class (``Meta`` and the declared fields), so the
   first result is kept as a prototype and each instance gets a deep copy (~0.16 ms), as DRF
   already does for declared fields. Subclasses that adjust fields per request (querysets scoped
   to the requesting user) still override ``get_fields`` and change their own copy.

2. ``fast_read = True`` (opt-in, for the hot list endpoints): rows are turned into dicts by a
   plan made once per class from DRF's own bound fields: for each field, the attribute path to
   read and the field whose ``to_representation`` converts the value (so formats cannot drift).
   That skips the per-request deep copy and DRF's per-field lookup machinery, which were most of
   a list's serialization time. Only plain cases are planned: model fields, properties and
   related-model fields by attribute path, primary-key relations, and ``SerializerMethodField``;
   a class with any other field keeps DRF's path, and a row whose attribute path meets a
   ``None`` or a missing related row midway is serialized by DRF's path.
   ``generic_representation`` is DRF's path, for tests.
"""

from __future__ import annotations

import copy

from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from rest_framework import relations, serializers


class ModelSerializer(serializers.ModelSerializer):
    fast_read = False

    def get_fields(self):
        cls = type(self)
        prototype = cls.__dict__.get("_mm_field_prototype")
        if prototype is None:
            prototype = super().get_fields()
            cls._mm_field_prototype = prototype
        return copy.deepcopy(prototype)

    def to_representation(self, instance):
        plan = _read_plan(type(self)) if self.fast_read else None
        if not plan:
            return super().to_representation(instance)
        out = {}
        for name, path, field, method in plan:
            if method is not None:
                out[name] = getattr(self, method)(instance)
                continue
            value = instance
            try:
                for attr in path:
                    if value is None:  # a null relation midway: DRF decides (default, null, skip)
                        return super().to_representation(instance)
                    value = getattr(value, attr)
            except ObjectDoesNotExist:  # a missing related row: as above
                return super().to_representation(instance)
            out[name] = None if value is None else (field.to_representation(value) if field is not None else value)
        return out

    def generic_representation(self, instance):
        """DRF's field-by-field path (what the fast path must equal)."""
        return super().to_representation(instance)


def _read_plan(cls) -> list | None:
    plan = cls.__dict__.get("_mm_read_plan", False)
    if plan is False:
        plan = _make_plan(cls)
        cls._mm_read_plan = plan
    return plan


def _attribute_ok(model, attr: str):
    """The related model if ``attr`` is a relation, ``True`` for a plain field or property,
    ``None`` if the attribute is anything else (a method, a manager...)."""
    try:
        field = model._meta.get_field(attr)
    except FieldDoesNotExist:
        return True if isinstance(getattr(model, attr, None), property) else None
    if field.many_to_many or field.one_to_many:
        return None
    if field.is_relation:
        return field.related_model
    return True


def _make_plan(cls) -> list | None:
    prototype = cls()
    model = cls.Meta.model
    plan = []
    for field in prototype._readable_fields:
        if isinstance(field, serializers.SerializerMethodField):
            plan.append((field.field_name, (), None, field.method_name))
            continue
        if isinstance(field, serializers.Serializer | serializers.ListSerializer | relations.ManyRelatedField):
            return None
        attrs = field.source_attrs
        if not attrs or field.source == "*":
            return None
        if isinstance(field, relations.RelatedField):
            # DRF reads the key column without loading the related row (pk-only optimization).
            if not (isinstance(field, relations.PrimaryKeyRelatedField) and field.use_pk_only_optimization()):
                return None
            if len(attrs) != 1 or field.pk_field is not None:
                return None
            try:
                key = model._meta.get_field(attrs[0])
            except FieldDoesNotExist:
                return None
            if not key.is_relation or key.many_to_many or key.one_to_many:
                return None
            plan.append((field.field_name, (key.attname,), None, None))
            continue
        current = model
        for i, attr in enumerate(attrs):
            kind = _attribute_ok(current, attr)
            if kind is None or (kind is True and i < len(attrs) - 1):
                return None
            if kind is not True:
                if i == len(attrs) - 1:
                    return None  # a relation itself as the value: leave it to DRF
                current = kind
        plan.append((field.field_name, tuple(attrs), field, None))
    return plan
