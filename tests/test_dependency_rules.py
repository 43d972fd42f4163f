"""The layering in ARCHITECTURE.md: trading <- connectors <- apps <- workers / mmsite."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "trading": {
        "django",
        "celery",
        "redis",
        "channels",
        "channels_redis",
        "ccxt",
        "aiohttp",
        "websockets",
        "psycopg",
        "requests",
        "connectors",
        "apps",
        "workers",
        "mmsite",
    },
    "connectors": {"django", "channels", "celery", "apps", "workers", "mmsite"},
    "apps": {"workers", "mmsite.urls", "mmsite.asgi"},
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(package: str, root: Path = ROOT) -> list[str]:
    banned = FORBIDDEN[package]
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        for lineno, module in imported_modules(path):
            if any(module == b or module.startswith(b + ".") for b in banned):
                bad.append(f"{path.relative_to(root)}:{lineno} imports {module}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_inward(package):
    assert violations(package) == []


def test_trading_never_reads_the_wall_clock():
    offenders = []
    for path in sorted((ROOT / "trading").rglob("*.py")):
        text = path.read_text()
        for needle in ("time.time(", "time.time_ns(", "datetime.now(", "datetime.utcnow(", "time.monotonic("):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)} calls {needle}")
    assert offenders == []


def test_rule_checker_catches_a_forbidden_import(tmp_path):
    (tmp_path / "trading").mkdir()
    (tmp_path / "trading" / "leak.py").write_text("import django\nfrom ccxt import binance\n")
    assert violations("trading", tmp_path) == ["trading/leak.py:1 imports django", "trading/leak.py:2 imports ccxt"]
