"""Schema-driven fuzzing of the REST API with schemathesis.

- ``test_schemathesis_checks_all_pass_on_the_whole_schema``: ``schemathesis run --checks all``
  against the real ASGI server (uvicorn) with a trader's token, every operation of the schema,
  every phase (examples, coverage, fuzzing, stateful), bounded by ``--max-examples`` and
  ``--max-time``. The rejections OpenAPI cannot express are listed, with reasons, in
  ``schemathesis.toml``. ``FUZZ_SEED`` picks another seed, ``FUZZ_EXAMPLES`` /
  ``FUZZ_SECONDS`` a longer run.
- In-process, part A's operations: no generated request (valid or not) gets a server error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import ccxt
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token

from tests.apps.bots.factories import make_account, make_bot, make_user
from tests.conftest import child_env, free_port

ROOT = Path(__file__).resolve().parents[2]

# Part A's endpoints (other apps are fuzzed by their owners' tests).
PART_A = r"^/api/v1/(exchange-accounts|markets|bots|orders|fills|balances|audit-log|accounts|kill-all)"


def _no_network(account, creds):
    raise ccxt.NetworkError("fuzzing: no network")


def _load_schema():
    from django.core.wsgi import get_wsgi_application

    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())
    return schema.include(path_regex=PART_A)


@pytest.fixture
def in_process_app(db, monkeypatch):
    """Serve requests in this test's transaction, with venues unreachable."""
    # The WSGI handler would close the test's connection (and its transaction) after each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    monkeypatch.setattr("apps.exchanges.services._default_exchange", _no_network)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def trader_token(db) -> str:
    trader = make_user("fuzzy")
    bot = make_bot(trader, account=make_account(trader, label="fuzz paper"))
    assert bot.pk
    return Token.objects.create(user=trader).key


schema = _load_schema()


# The explicit (coverage) phase adds ~60 boundary cases per operation; it found the two bugs
# pinned below. Run it with FUZZ_FULL=1; by default only 15 generated examples per operation.
PHASES = [Phase.explicit, Phase.generate] if os.environ.get("FUZZ_FULL") else [Phase.generate]


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=15,
    phases=PHASES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_request_causes_a_server_error(case, in_process_app, trader_token):
    response = case.call(headers={"Authorization": f"Token {trader_token}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400 and response.text:
        content_type = (response.headers.get("content-type") or [""])[0]
        assert content_type.startswith("application/json"), f"{case.method} {case.formatted_path}: {response.text[:80]}"


def test_the_openapi_schema_validates_and_lists_part_a():
    document = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(document)
    for path in ("/api/v1/exchange-accounts/{id}/rotate-keys/", "/api/v1/bots/{id}/kill/", "/api/v1/bots/{id}/pnl/"):
        assert path in document["paths"], path
    create = document["components"]["schemas"]["ExchangeAccountCreateRequest"]["properties"]
    assert create["api_secret"]["writeOnly"] is True
    assert "api_secret" not in document["components"]["schemas"]["ExchangeAccount"]["properties"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/bots/0.5/",
        "/api/v1/bots/0.5/pnl/",
        "/api/v1/accounts/0.5/kill/",
        "/api/v1/orders/abc/",
        "/api/v1/fills/?start=0367-06-03T20:57:32%2B23:47",
        "/api/v1/fills/?end=0001-01-01T00:00:00%2B05:00",
        "/api/v1/bots/1/pnl/?start=0001-01-01T00:00:00%2B05:00",
    ],
)
def test_odd_ids_and_far_away_times_get_json_answers_not_a_server_error(url, trader_token):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {trader_token}")
    response = client.post(url) if url.endswith("kill/") else client.get(url)
    assert response.status_code in (200, 400, 404), (url, response.status_code)
    assert response["Content-Type"].startswith("application/json")


@pytest.fixture
def served_api(transactional_db, clean_redis, tmp_path):
    """The real ASGI app under uvicorn on a free port, its log in a file (a fuzz run makes
    thousands of 4xx answers, each logged: a pipe nobody reads would fill and stall the server)."""
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    server = ["uvicorn", "mmsite.asgi:application", "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"]
    process = subprocess.Popen(
        [sys.executable, "-m", *server, "--no-access-log", "--log-level", "warning"],
        cwd=ROOT,
        env=child_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2)
            break
        except urllib.error.HTTPError:
            break  # answering (503 while no worker runs is fine here)
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.3)
    yield base, tmp_path / "server.log"
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.mark.slow
def _only_the_ast_recursion_bug(output: str) -> bool:
    summary = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else ""
    return "AST constructor recursion depth mismatch" in output and "Failures:" not in summary


def test_schemathesis_checks_all_pass_on_the_whole_schema(served_api, tmp_path):
    base, server_log = served_api
    trader = make_user("fuzzer")
    make_bot(trader, account=make_account(trader, label="fuzz paper"))
    token = Token.objects.create(user=trader).key
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "run",
        f"{base}/api/v1/schema/?format=json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Token {token}",
        "--max-examples",
        os.environ.get("FUZZ_EXAMPLES", "5"),
        "--max-time",
        os.environ.get("FUZZ_SECONDS", "70"),
        "--seed",
        os.environ.get("FUZZ_SEED", "20261207"),
        # One worker: with two, schemathesis' threads run hypothesis' ast.parse of filter lambdas
        # at the same time, and CPython 3.11's parser then fails ("AST constructor recursion depth
        # mismatch"; twice in a row in one CI run). The time budget is for the whole run.
        "--workers",
        os.environ.get("FUZZ_WORKERS", "1"),
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
    ]
    started = time.monotonic()
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    if run.returncode != 0 and _only_the_ast_recursion_bug(output):
        # CPython 3.11's ast.parse can fail with "AST constructor recursion depth mismatch" when
        # hypothesis describes a filter lambda deep in schemathesis' coverage phase (a runtime
        # error of the tool, not a finding about the API; seen in 2 of ~10 runs). Run it once more;
        # any check failure, or the same error twice, still fails the test.
        print("schemathesis hit CPython's AST recursion bug (no check failed); running it again")
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        output = run.stdout + run.stderr
    elapsed = time.monotonic() - started
    summary = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-3000:]
    print(f"schemathesis: {elapsed:.0f} s\n{summary}")
    assert "Tested: " in output, output[-3000:]
    errors = [line for line in server_log.read_text().splitlines() if "ERROR" in line or "Traceback" in line]
    assert run.returncode == 0, "\n".join([output[-20000:], "--- server errors ---", *errors[-40:]])
