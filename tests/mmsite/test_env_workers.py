"""The bot hosts' MM_* settings (mmsite/env.py): defaults, accepted values, and refusals that
name the setting, the value and what is accepted."""

from __future__ import annotations

import pytest

from mmsite import env
from mmsite.env import ConfigurationError


def test_defaults_when_unset(monkeypatch):
    for name in ("MM_HOST", "MM_WAKE_BATCH", "MM_GC_THRESHOLD", "MM_NO_CHANNEL_LAYER", "MM_PAPER_FAULTS",
                 "MM_LIVE_HTTP_BASE", "MM_HOST_PROFILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    assert env.host_enabled() is True
    assert env.host_wake_batch() == 16
    assert env.host_gc_threshold() == (50000, 20, 100)
    assert env.channel_layer_disabled() is False
    assert env.paper_faults() is None
    assert env.live_http_base() is None
    assert env.host_profile_path() is None


def test_accepted_values(monkeypatch):
    monkeypatch.setenv("MM_HOST", "0")
    monkeypatch.setenv("MM_WAKE_BATCH", "32")
    monkeypatch.setenv("MM_GC_THRESHOLD", "default")
    monkeypatch.setenv("MM_PAPER_FAULTS", "error=0.2, timeout=0.15,delay_ms=300,seed=5")
    monkeypatch.setenv("MM_LIVE_HTTP_BASE", "http://127.0.0.1:8080")
    assert env.host_enabled() is False
    assert env.host_wake_batch() == 32
    assert env.host_gc_threshold() is None
    assert env.paper_faults() == {"error": 0.2, "timeout": 0.15, "delay_ms": 300.0, "seed": 5}
    assert env.live_http_base() == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("name", "value", "reader", "says"),
    [
        ("MM_HOST", "maybe", env.host_enabled, "MM_HOST='maybe' is not a boolean"),
        ("MM_WAKE_BATCH", "0", env.host_wake_batch, "MM_WAKE_BATCH='0' is out of range"),
        ("MM_GC_THRESHOLD", "50000,20", env.host_gc_threshold, "three whole numbers"),
        ("MM_PAPER_FAULTS", "error=2", env.paper_faults, "error='2' is out of range"),
        ("MM_PAPER_FAULTS", "errors=0.1", env.paper_faults, "'errors=0.1' is refused"),
        ("MM_LIVE_HTTP_BASE", "https://api.binance.com", env.live_http_base, "only a loopback test server"),
    ],
)
def test_refusals_name_the_setting_and_what_is_accepted(monkeypatch, name, value, reader, says):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=says.replace("(", r"\(").replace(".", r"\.")):
        reader()


def test_paper_faults_for_one_account_with_a_fixed_status_and_dropped_places(monkeypatch):
    from workers.paper_faults import PaperFaults

    monkeypatch.setenv("MM_PAPER_FAULTS", "error=1,status=429,drop=0.5,account=12,seed=2")
    assert env.paper_faults() == {"error": 1.0, "status": 429.0, "drop": 0.5, "account": 12, "seed": 2}
    assert PaperFaults.from_env(account_id=11) is None  # another account's venues: no fault
    faults = PaperFaults.from_env(account_id=12)
    assert (faults.error, faults.status, faults.drop) == (1.0, 429, 0.5)
    monkeypatch.setenv("MM_PAPER_FAULTS", "status=700")
    with pytest.raises(ConfigurationError, match="status='700' is out of range"):
        env.paper_faults()
    monkeypatch.setenv("MM_PAPER_FAULTS", "account=x")
    with pytest.raises(ConfigurationError, match="account='x' is not a number"):
        env.paper_faults()
