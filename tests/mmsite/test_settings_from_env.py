"""A bad or missing setting stops start-up with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_check(**env_overrides: str) -> subprocess.CompletedProcess:
    # The test run itself sets DEBUG for its own settings; a child process starts clean.
    env = {k: v for k, v in os.environ.items() if k not in env_overrides and k != "DEBUG"}
    env.update({k: v for k, v in env_overrides.items() if v is not None})
    env["DJANGO_SETTINGS_MODULE"] = env_overrides.get("DJANGO_SETTINGS_MODULE") or "mmsite.settings.local"
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"DATABASE_URL": "mysql://localhost/mmsite"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgres://localhost:notaport/mmsite"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"EMAIL_PORT": "smtp"}, "EMAIL_PORT"),
        ({"CREDENTIALS_ENCRYPTION_KEYS": "not-a-key"}, "CREDENTIALS_ENCRYPTION_KEYS"),
        ({"DJANGO_SETTINGS_MODULE": "mmsite.settings.production", "SECRET_KEY": ""}, "SECRET_KEY"),
    ],
)
def test_bad_setting_stops_startup_with_one_line_naming_it(overrides, names):
    result = run_check(**overrides)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ") and names in lines[0]
    assert "Traceback" not in result.stderr


def test_production_needs_encryption_keys_and_hosts():
    result = run_check(
        DJANGO_SETTINGS_MODULE="mmsite.settings.production",
        SECRET_KEY="x" * 40,
        ALLOWED_HOSTS="mm.example.com",
        CREDENTIALS_ENCRYPTION_KEYS="",
    )
    assert result.returncode == 2 and "CREDENTIALS_ENCRYPTION_KEYS" in result.stderr


def test_valid_production_settings_pass_the_check():
    from cryptography.fernet import Fernet

    result = run_check(
        DJANGO_SETTINGS_MODULE="mmsite.settings.production",
        SECRET_KEY="x" * 40,
        ALLOWED_HOSTS="mm.example.com",
        CREDENTIALS_ENCRYPTION_KEYS=f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
    )
    assert result.returncode == 0, result.stderr
