"""The set-up script's settings (scripts/ensure_services.py, read in mmsite/env.py) and the
number settings' refusals: each names the setting, the value and what is accepted."""

from __future__ import annotations

import pytest

from mmsite import env
from mmsite.env import ConfigurationError

SERVICE_SETTINGS = ("DATABASE_URL", "REDIS_URL", "MMSITE_NO_START_SERVICES", "MMSITE_NO_INSTALL", "MMSITE_VAR_DIR",
                    "MMSITE_PG_BIN")  # fmt: skip


def test_service_settings_defaults_match_the_settings(monkeypatch):
    for name in SERVICE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert env.services_database_url() == "postgres://postgres@127.0.0.1:5432/mmsite"
    assert env.database_from_url("DATABASE_URL", env.DEFAULT_DATABASE_URL)["NAME"] == "mmsite"
    assert env.services_redis_url() == "redis://127.0.0.1:6379/0"
    assert env.services_may_start() is True
    assert env.services_may_install() is True
    assert env.services_var_dir("/srv/mm/var") == "/srv/mm/var"
    assert env.services_pg_bin() is None


def test_service_settings_accepted_values(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://mm:secret@db.internal:6543/mm_prod?sslmode=require")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6380/2")
    monkeypatch.setenv("MMSITE_NO_START_SERVICES", "yes")
    monkeypatch.setenv("MMSITE_NO_INSTALL", "on")
    monkeypatch.setenv("MMSITE_VAR_DIR", "/tmp/mm-var")
    monkeypatch.setenv("MMSITE_PG_BIN", "/usr/lib/postgresql/15/bin")
    assert env.services_database_url() == "postgresql://mm:secret@db.internal:6543/mm_prod?sslmode=require"
    assert env.services_redis_url() == "redis://cache:6380/2"
    assert env.services_may_start() is False
    assert env.services_may_install() is False
    assert env.services_var_dir("/unused") == "/tmp/mm-var"
    assert env.services_pg_bin() == "/usr/lib/postgresql/15/bin"


@pytest.mark.parametrize(
    ("name", "value", "reader", "says"),
    [
        ("DATABASE_URL", "mysql://localhost/mmsite", env.services_database_url,
         "DATABASE_URL='mysql://localhost/mmsite' has scheme 'mysql'; accepted: postgres://"),
        ("DATABASE_URL", "postgres://localhost:5432/", env.services_database_url, "names no database; accepted"),
        ("DATABASE_URL", "postgres://localhost:port/mm", env.services_database_url,
         "has an invalid port; accepted: 1 to 65535"),
        ("REDIS_URL", "http://localhost:6379", env.services_redis_url, "has scheme 'http'; accepted: redis://"),
        ("MMSITE_NO_START_SERVICES", "maybe", env.services_may_start,
         "MMSITE_NO_START_SERVICES='maybe' is not a boolean; accepted: 1/0"),
        ("MMSITE_NO_INSTALL", "2", env.services_may_install, "MMSITE_NO_INSTALL='2' is not a boolean; accepted"),
    ],
)  # fmt: skip
def test_service_setting_refusals_name_setting_value_and_accepted(monkeypatch, name, value, reader, says):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as refused:
        reader()
    assert says in str(refused.value)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("many", "MM_TEST_N='many' is not a whole number; accepted: a whole number from 1 to 10"),
        ("11", "MM_TEST_N='11' is out of range; accepted: a whole number from 1 to 10"),
    ],
)
def test_whole_number_refusal_says_what_is_accepted(monkeypatch, value, says):
    monkeypatch.setenv("MM_TEST_N", value)
    with pytest.raises(ConfigurationError) as refused:
        env.env_int("MM_TEST_N", 5, minimum=1, maximum=10)
    assert str(refused.value) == says


def test_number_refusal_with_one_bound_says_what_is_accepted(monkeypatch):
    monkeypatch.setenv("MM_TEST_X", "-1")
    with pytest.raises(ConfigurationError) as refused:
        env.env_float("MM_TEST_X", 1.0, minimum=0.5)
    assert str(refused.value) == "MM_TEST_X='-1' is out of range; accepted: a number, 0.5 or more"
    monkeypatch.setenv("MM_TEST_X", "fast")
    with pytest.raises(ConfigurationError) as refused:
        env.env_float("MM_TEST_X", 1.0, minimum=0.5)
    assert str(refused.value) == "MM_TEST_X='fast' is not a number; accepted: a number, 0.5 or more"
