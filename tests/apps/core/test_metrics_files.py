"""Multiprocess metric files: values written by other processes are collected, and the files of
processes that ended are folded into archives (counters keep their totals, live gauges go)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHILD = """
import django, os
django.setup()
from apps.core import metrics
metrics.TASK_FAILURES.labels("child.task").inc(3)
metrics.process_started("telegram")
print(metrics.MULTIPROC_DIR)
"""


def run_child(tmp_path) -> None:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="mmsite.settings.test", METRICS_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tmp_path)


def value(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def metrics_dir(tmp_path, monkeypatch):
    from apps.core import metrics

    monkeypatch.setattr(metrics, "MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def test_dead_processes_are_folded_into_archives_and_keep_counting(metrics_dir):
    from apps.core import metrics

    run_child(metrics_dir)
    run_child(metrics_dir)
    assert len(glob.glob(str(metrics_dir / "counter_*.db"))) == 2
    text = metrics.scrape().decode()
    # Both ended: their counters are summed in the archive, their live gauge files are gone.
    assert value(text, 'mm_celery_task_failures_total{task="child.task"}') == 6
    assert value(text, 'mm_process_up{kind="telegram"}') is None
    assert sorted(os.path.basename(p) for p in glob.glob(str(metrics_dir / "*.db"))) == ["counter_archive.db"]
    run_child(metrics_dir)
    text = metrics.scrape().decode()
    assert value(text, 'mm_celery_task_failures_total{task="child.task"}') == 9
