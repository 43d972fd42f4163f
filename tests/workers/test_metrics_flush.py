"""The bot hooks note latencies in memory and the sampler writes them bucket by bucket: the
result equals observing each value."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from workers.metrics import FAST_BUCKETS, _flush_histogram


def samples(registry: CollectorRegistry, name: str) -> dict:
    return {
        (s.name.replace(name, "x"), tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_flushing_noted_values_equals_observing_them(monkeypatch):
    from prometheus_client import values

    monkeypatch.setattr(values, "ValueClass", values.MutexValue)  # in memory: not the shared files
    values = [0.0001, 0.0005, 0.0007, 0.003, 0.003, 0.02, 0.9, 4.0, 12.0, 0.0025]
    direct_registry, flushed_registry = CollectorRegistry(), CollectorRegistry()
    direct = Histogram("direct_seconds", "d", ["bot"], buckets=FAST_BUCKETS, registry=direct_registry)
    flushed = Histogram("flushed_seconds", "f", ["bot"], buckets=FAST_BUCKETS, registry=flushed_registry)
    for v in values:
        direct.labels("1").observe(v)
    pending = list(values)
    _flush_histogram(flushed.labels("1"), pending)
    assert pending == []
    assert samples(direct_registry, "direct_seconds") == samples(flushed_registry, "flushed_seconds")
