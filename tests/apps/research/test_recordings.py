"""Recordings users upload: validated as read, quality measured, registered whole or not at all,
scoped to their owner, and backtested like the shipped ones."""

from __future__ import annotations

import gzip
import io

import pytest
from rest_framework.test import APIClient

from apps.backtests import runner
from apps.backtests.models import RunStatus
from apps.backtests.services import backtest_create
from apps.backtests.validation import validate_backtest_input
from apps.research.models import UserRecording
from connectors.binance_recording import RECORDINGS

pytestmark = pytest.mark.django_db
SPOT = RECORDINGS["binance-spot-btcusdt"]


@pytest.fixture(autouse=True)
def _recordings_dir(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    return settings.RECORDINGS_DIR


@pytest.fixture
def market():
    from apps.exchanges.models import Market

    return Market.objects.create(
        venue="binance", symbol="BTC/USDT", base="BTC", quote="USDT", tick_size="0.01", lot_size="0.00000001"
    )


def _client(username: str, role: str = "trader") -> APIClient:
    from apps.accounts.services import user_create

    client = APIClient()
    client.force_authenticate(user_create(username=username, password="x", role=role, check_password=False))
    return client


def _upload(client, market, *files: tuple[str, bytes], name: str = "mine"):
    payload = {"name": name, "market": market.pk, "files": [io.BytesIO(b) for _, b in files]}
    for (fname, _), f in zip(files, payload["files"], strict=True):
        f.name = fname
    return client.post("/api/v1/recordings/", payload, format="multipart")


def _gz(lines: list[bytes]) -> bytes:
    return gzip.compress(b"".join(lines))


def test_two_shipped_files_register_as_one_stream_and_backtest(market, _recordings_dir):
    client = _client("rec-owner")
    files = [(p.name, p.read_bytes()) for p in SPOT.paths]
    response = _upload(client, market, *files)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["lines"] == 41_249 + 58_325 and body["bad_lines"] == 0 and body["counts"]["snapshots"] == 1
    assert body["counts"]["deltas"] > 6000 and body["backtest_name"] == f"user:{body['id']}"
    assert body["first_ts"] < body["last_ts"] and body["unsynced_seconds"] < 5  # before the snapshot only
    owner = UserRecording.objects.get(pk=body["id"]).owner
    run = backtest_create(
        owner=owner,
        name="own data",
        strategy="fixed_spread",
        params={"order_amount": "0.001"},
        data_source="recording",
        data_params={"recording": body["backtest_name"], "max_events": 5000},
    )
    done = runner.backtest_execute(run_id=run.pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.metrics["events"] == 5000 and done.metrics["recording"] == "mine"
    assert done.metrics["data_unsynced_seconds"] == body["unsynced_seconds"]


def test_every_bad_line_is_counted_and_the_book_is_unsynced_until_the_next_snapshot(market):
    lines = gzip.decompress(SPOT.paths[0].read_bytes()).splitlines(keepends=True)[:3000]
    depth = [i for i, line in enumerate(lines) if b"@depth" in line and i > 100][:30]
    for i in depth:  # 30 broken depth updates: more than the 20 samples kept
        lines[i] = lines[i][:40] + b"\n"
    response = _upload(_client("rec-bad"), market, ("broken.gz", _gz(lines)))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["bad_lines"] == 30 and len(body["bad_samples"]) == 20
    assert body["bad_samples"][0]["line"] == depth[0] + 1 and body["bad_samples"][0]["file"] == "broken.gz"
    assert body["unsynced_seconds"] > 1 and body["gaps"] >= 0


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"this is not gzip at all", "not a readable gzip"),
        (gzip.compress(b"1 {}\n" * 10)[:-12], "not a readable gzip"),
        (gzip.compress(b"ts,price,qty\n" + b"1,2,3\n" * 60), "none of the first 50 lines"),
    ],
)
def test_bad_files_are_refused_with_nothing_registered(market, _recordings_dir, content, says):
    response = _upload(_client("rec-refused"), market, ("x.gz", content))
    assert response.status_code == 400 and says in str(response.json()), response.content
    assert not UserRecording.objects.exists()
    assert not any(_recordings_dir.rglob("*.gz"))


def test_a_recording_of_another_symbol_is_refused(market):
    from apps.exchanges.models import Market

    eth = Market.objects.create(
        venue="binance", symbol="ETH/USDT", base="ETH", quote="USDT", tick_size="0.01", lot_size="0.0001"
    )
    response = _upload(_client("rec-symbol"), eth, ("btc.gz", SPOT.paths[0].read_bytes()))
    assert response.status_code == 400
    assert "'BTCUSDT'" in str(response.json()["market"]) and "'ETHUSDT'" in str(response.json()["market"])


def test_an_upload_over_the_size_limit_is_refused(market, settings):
    settings.RECORDING_MAX_UPLOAD_MB = 1
    response = _upload(_client("rec-big"), market, ("big.gz", SPOT.paths[1].read_bytes()))
    assert response.status_code == 400 and "larger than 1 MB" in str(response.json())


def test_another_users_recording_is_neither_visible_nor_usable(market):
    owner = _client("rec-a")
    rec_id = _upload(owner, market, ("a.gz", SPOT.paths[0].read_bytes())).json()["id"]
    other = _client("rec-b")
    assert other.get(f"/api/v1/recordings/{rec_id}/").status_code == 404
    assert other.get("/api/v1/recordings/").json()["count"] == 0
    from apps.accounts.models import User

    errors = validate_backtest_input(
        strategy="fixed_spread",
        params={"order_amount": "0.001"},
        risk={},
        data_source="recording",
        data_params={"recording": f"user:{rec_id}"},
        owner=User.objects.get(username="rec-b"),
    )
    assert "not one of your recordings" in errors["data_params"]["recording"]
    assert owner.delete(f"/api/v1/recordings/{rec_id}/").status_code == 204


def test_optimisations_take_the_owners_recordings_only(market):
    from apps.accounts.models import User
    from apps.research.validation import validate_optimisation

    rec_id = _upload(_client("opt-rec-a"), market, ("a.gz", SPOT.paths[0].read_bytes())).json()["id"]
    _client("opt-rec-b")
    request = {
        "strategy": "fixed_spread",
        "params": {"order_amount": "0.001"},
        "search_space": {"bid_spread": {"low": "0.0001", "high": "0.001"}},
        "objective": "net_pnl",
        "recording": f"user:{rec_id}",
        "n_trials": 3,
    }
    assert validate_optimisation(request, User.objects.get(username="opt-rec-a")) == {}
    refused = validate_optimisation(request, User.objects.get(username="opt-rec-b"))
    assert "not one of your recordings" in refused["recording"]
