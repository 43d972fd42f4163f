"""The metrics endpoint during a running paper bot on a real Celery worker: the bot's counters
move between two scrapes, the host's and the feed's figures are there, and a scrape without the
token (or from outside the allowed networks) is refused."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.workers.helpers import make_paper_bots, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
TOKEN = "metrics-test-token-0123456789"
DOCKER = Path(__file__).resolve().parents[2] / "docker"


def scrape(client) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return response.content.decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of ``name`` whose labels include ``labels`` (None when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.rindex("}") + 1]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_scrape_during_a_running_paper_bot_shows_its_counters_moving(workers, client, settings):
    """Counters are compared with an earlier scrape: the metrics directory may hold figures of
    earlier test runs for the same bot id (the test database reuses ids)."""
    from workers import supervisor

    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    _user, _account, bots = make_paper_bots(1, spread="0.00003")
    bot = str(bots[0].pk)
    labels = {"bot": bot, "strategy": "fixed_spread", "venue": "sim:alpha", "market": "BTC/USDT"}
    before = scrape(client)
    supervisor.tick()
    workers.start("m1")

    def value(text: str, name: str) -> float:
        return sample(text, name, **labels) or 0.0

    moving = ("mm_bot_orders_placed_total", "mm_bot_running_seconds_total", "mm_bot_lease_renewals_total")
    assert wait_until(lambda: value(scrape(client), moving[0]) > value(before, moving[0]), 60), "no order placed"
    first = scrape(client)
    assert wait_until(lambda: all(value(scrape(client), m) > value(first, m) for m in moving), 30), [
        (m, value(first, m), value(scrape(client), m)) for m in moving
    ]
    later = scrape(client)
    for name in ("mm_bot_requote_latency_seconds_count", "mm_bot_order_entry_latency_seconds_count"):
        assert value(later, name) > value(before, name), name
    assert value(later, "mm_bot_takeovers_total") - value(before, "mm_bot_takeovers_total") == 1
    assert value(later, "mm_bot_running") == 1
    assert sample(later, "mm_feed_messages_total", venue="sim:alpha", market="BTC/USDT") > (
        sample(before, "mm_feed_messages_total", venue="sim:alpha", market="BTC/USDT") or 0
    )
    assert sample(later, "mm_feed_book_synced", venue="sim:alpha", market="BTC/USDT") == 1
    assert sample(later, "mm_feed_staleness_seconds", venue="sim:alpha", market="BTC/USDT") < 10
    assert any(line.startswith("mm_host_loop_lag_seconds{") for line in later.splitlines())
    assert sample(later, "mm_process_up", kind="bots") >= 1
    assert sample(later, "mm_http_requests_total", view="metrics", status="2xx") > (
        sample(before, "mm_http_requests_total", view="metrics", status="2xx") or 0
    )


def test_unauthenticated_scrapes_are_refused(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics").status_code == 403
    refused = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token-0123456789")
    assert refused.status_code == 403
    assert "METRICS_TOKEN" in refused.json()["detail"]
    # A network setting lets the test client's address (127.0.0.1) in, and only it.
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 403
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert client.get("/metrics").status_code == 200
    # Neither set: nobody, not even with a token-looking header.
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    denied = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert denied.status_code == 403 and "not exposed" in denied.json()["detail"]


def dashboard_metric_names() -> set[str]:
    """Every metric a query of the provisioned Grafana dashboard reads."""
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "marketmakersuite.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    assert len(exprs) > 30
    return {name for expr in exprs for name in re.findall(r"\bmm_[a-z_]+", expr)}


def test_every_dashboard_query_reads_a_metric_the_running_app_exports(workers, client, settings):
    from workers import supervisor

    settings.METRICS_TOKEN = TOKEN
    _user, _account, _bots = make_paper_bots(1, spread="0.00003")
    supervisor.tick()
    workers.start("m2")
    client.get("/healthz")

    def missing() -> set[str]:
        exported = set(re.findall(r"^# TYPE (\S+) (\w+)", scrape(client), flags=re.M))
        names = {name for name, _type in exported}
        histograms = {name for name, kind in exported if kind == "histogram"}
        out = set()
        for name in dashboard_metric_names():
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            if name not in names and not (base in histograms and base != name):
                out.add(name)
        return out

    # Waited for: the worker's host gauges appear with its first sample (a second or so after
    # it starts), while counters of an earlier run may already be there.
    assert wait_until(lambda: not missing(), 60), (
        f"the dashboard queries metrics the app does not export: {sorted(missing())}"
    )


def test_docker_compose_monitoring_profile_is_valid():
    """``docker compose --profile monitoring config`` (Compose v2) names the monitoring services.
    Where only Compose v1 is installed, the same check runs without the top-level ``name:`` key
    (v1 does not know it); with neither, the test is skipped (it says so)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "POSTGRES_PASSWORD": "x",
        "SECRET_KEY": "y",
        "CREDENTIALS_ENCRYPTION_KEYS": "z",
        "METRICS_TOKEN": TOKEN,
    }
    v2 = (
        shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    )
    if v2:
        command = ["docker", "compose", "-f", str(DOCKER / "compose.yml"), "--profile", "monitoring", "config"]
        source = None
    elif shutil.which("docker-compose"):
        source = (DOCKER / "compose.yml").read_text()
        source = "\n".join(line for line in source.splitlines() if not line.startswith("name:"))
        command = ["docker-compose", "-f", "-", "--project-directory", str(DOCKER), "--profile", "monitoring", "config"]
    else:
        pytest.skip("neither docker compose (v2) nor docker-compose (v1) is installed")
    out = subprocess.run(command, input=source, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    for service in ("prometheus", "grafana", "web", "bots", "beat"):
        assert f"\n  {service}:" in out.stdout
    assert "/etc/prometheus/prometheus.yml" in out.stdout
    assert "METRICS_DIR: /var/lib/mmsite/metrics" in out.stdout
