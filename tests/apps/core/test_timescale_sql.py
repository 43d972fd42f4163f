"""The TimescaleDB policy and continuous-aggregate SQL our migrations run, checked on plain
PostgreSQL (on TimescaleDB these checks are skipped: ``tests/timescale`` runs the migrations
and their statements for real there).

Without TimescaleDB the statements cannot run for real. Instead: (1) their
key parts are asserted as TimescaleDB 2.x documents them; (2) they are parsed and type-checked
by this PostgreSQL against stand-ins with the exact TimescaleDB 2.x signatures (named
arguments and types) — the ``timescaledb.*`` storage options fail only at execution with
"unrecognized parameter namespace", which proves the statement parsed; (3) on plain
PostgreSQL the migration operations execute nothing.
"""

from __future__ import annotations

import importlib

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from apps.core import timescale

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _plain_postgres_only(db):
    from apps.core.timeseries import timescale_enabled

    if timescale_enabled(connection):
        pytest.skip("stand-ins for TimescaleDB's functions need plain PostgreSQL; tests/timescale runs the real ones")


marketdata_policies = importlib.import_module("apps.marketdata.migrations.0002_timescale_policies")
arbitrage_policies = importlib.import_module("apps.arbitrage.migrations.0002_timescale_policies")

# Stand-ins with TimescaleDB 2.x's signatures ("any" arguments are C-only; interval here).
STUBS = """
CREATE SCHEMA tsdb_stub;
CREATE FUNCTION tsdb_stub.add_compression_policy(hypertable regclass, compress_after interval DEFAULT NULL,
    if_not_exists boolean DEFAULT false, schedule_interval interval DEFAULT NULL,
    initial_start timestamptz DEFAULT NULL, timezone text DEFAULT NULL,
    compress_created_before interval DEFAULT NULL) RETURNS integer LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION tsdb_stub.add_retention_policy(relation regclass, drop_after interval DEFAULT NULL,
    if_not_exists boolean DEFAULT false, schedule_interval interval DEFAULT NULL,
    initial_start timestamptz DEFAULT NULL, timezone text DEFAULT NULL,
    drop_created_before interval DEFAULT NULL) RETURNS integer LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION tsdb_stub.add_continuous_aggregate_policy(continuous_aggregate regclass,
    start_offset interval, end_offset interval, schedule_interval interval,
    if_not_exists boolean DEFAULT false, initial_start timestamptz DEFAULT NULL,
    timezone text DEFAULT NULL) RETURNS integer LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION tsdb_stub.remove_retention_policy(relation regclass, if_exists boolean DEFAULT false)
    RETURNS void LANGUAGE sql AS '';
CREATE FUNCTION tsdb_stub.remove_compression_policy(hypertable regclass, if_exists boolean DEFAULT false)
    RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION tsdb_stub.time_bucket(bucket_width interval, ts timestamptz) RETURNS timestamptz
    LANGUAGE sql AS 'SELECT date_bin(bucket_width, ts, timestamptz ''2000-01-03 00:00:00+00'')';
CREATE FUNCTION tsdb_stub.keep(state anyelement, value anyelement, t timestamptz) RETURNS anyelement
    LANGUAGE sql AS 'SELECT coalesce(state, value)';
CREATE AGGREGATE tsdb_stub.first(anyelement, timestamptz) (SFUNC = tsdb_stub.keep, STYPE = anyelement);
CREATE AGGREGATE tsdb_stub.last(anyelement, timestamptz) (SFUNC = tsdb_stub.keep, STYPE = anyelement);
"""


def run_statement(sql: str) -> str | None:
    """Execute in a savepoint; return the error message (None when it ran)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    except DatabaseError as exc:
        return str(exc)
    return None


@pytest.fixture
def stubs():
    with connection.cursor() as cursor:
        cursor.execute(STUBS)
        cursor.execute("SET LOCAL search_path = tsdb_stub, public")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL search_path = public")


def test_rendered_policy_sql_has_timescaledb_2_syntax():
    compress = timescale.compression_sql(
        "marketdata_trade", segment_by=["market_id"], order_by="ts DESC, trade_id", compress_after="7 days"
    )
    assert compress == [
        "ALTER TABLE marketdata_trade SET (timescaledb.compress, timescaledb.compress_segmentby = 'market_id', "
        "timescaledb.compress_orderby = 'ts DESC, trade_id')",
        "SELECT add_compression_policy('marketdata_trade', compress_after => INTERVAL '7 days', if_not_exists => true)",
    ]
    assert timescale.retention_sql("marketdata_trade", drop_after="180 days") == [
        "SELECT add_retention_policy('marketdata_trade', drop_after => INTERVAL '180 days', if_not_exists => true)"
    ]


def test_candles_aggregate_sql_is_a_continuous_aggregate_with_no_data_and_a_policy():
    create, policy = timescale.continuous_aggregate_sql(
        "marketdata_candles_1m",
        select=timescale.candles_select_sql("marketdata_trade"),
        start_offset="3 hours",
        end_offset="1 minute",
        schedule_interval="1 minute",
    )
    assert create.startswith(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS marketdata_candles_1m WITH (timescaledb.continuous) AS SELECT"
    )
    assert create.endswith("WITH NO DATA")  # may run inside the migration's transaction
    for part in (
        "time_bucket(INTERVAL '1 minute', ts) AS bucket",
        "first(price, ts) AS open",
        "max(price) AS high",
        "min(price) AS low",
        "last(price, ts) AS close",
        "sum(qty) AS volume",
        "GROUP BY market_id, bucket",
    ):
        assert part in create
    assert policy == (
        "SELECT add_continuous_aggregate_policy('marketdata_candles_1m', start_offset => INTERVAL '3 hours', "
        "end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', if_not_exists => true)"
    )


def test_unique_columns_of_compressed_tables_are_segment_or_order_columns():
    # TimescaleDB refuses to compress a table whose unique index has a column that is neither.
    statements = marketdata_policies._forward()
    trade_alter = next(s for s in statements if s.startswith("ALTER TABLE marketdata_trade"))
    assert "compress_segmentby = 'market_id'" in trade_alter and "compress_orderby = 'ts DESC, trade_id'" in trade_alter
    for table in ("marketdata_topofbooksnapshot", "marketdata_depthsnapshot"):
        alter = next(s for s in statements if s.startswith(f"ALTER TABLE {table}"))
        assert "compress_segmentby = 'market_id'" in alter and "compress_orderby = 'ts DESC'" in alter


def test_helpers_refuse_values_that_would_inject_sql():
    with pytest.raises(ValueError, match="table"):
        timescale.retention_sql("trades; DROP TABLE x", drop_after="1 day")
    with pytest.raises(ValueError, match="drop_after"):
        timescale.retention_sql("marketdata_trade", drop_after="1 day'); DROP TABLE x; --")
    with pytest.raises(ValueError, match="order_by"):
        timescale.compression_sql("marketdata_trade", segment_by=["market_id"], order_by="ts DESC'")


@pytest.mark.parametrize("module", [marketdata_policies, arbitrage_policies], ids=["marketdata", "arbitrage"])
def test_migration_statements_parse_and_match_timescaledb_signatures(stubs, module):
    operation = module.Migration.operations[0]
    statements = _collect(operation.code) + _collect(operation.reverse_code)
    assert statements
    for sql in statements:
        if "WITH (timescaledb.continuous)" in sql:
            # Parsed, planned against the stand-in time_bucket/first/last, refused only for the option.
            error = run_statement(sql)
            assert error is not None and 'unrecognized parameter namespace "timescaledb"' in error, (sql, error)
            # Create it as a plain view so its policy statements can resolve the name.
            assert (
                run_statement(sql.replace(" WITH (timescaledb.continuous)", "").replace("WITH NO DATA", "WITH DATA"))
                is None
            )
        elif sql.startswith("ALTER TABLE"):
            error = run_statement(sql)
            assert error is not None and 'unrecognized parameter namespace "timescaledb"' in error, (sql, error)
        elif sql.startswith("DROP MATERIALIZED VIEW"):
            assert run_statement(sql) is None, sql
        else:
            assert run_statement(sql) is None, sql


def _collect(function) -> list[str]:
    """Run a timescale_only() forward/reverse function with TimescaleDB 'enabled' and a schema
    editor that records the statements instead of executing them."""

    class Recorder:
        def __init__(self):
            self.connection = type("C", (), {"_mm_timescale_enabled": True})()
            self.statements: list[str] = []

        def execute(self, sql, params=None):
            self.statements.append(sql)

    recorder = Recorder()
    function(None, recorder)
    return recorder.statements


def test_on_plain_postgres_the_migrations_execute_nothing():
    from django.test.utils import CaptureQueriesContext

    from apps.core.timeseries import timescale_enabled

    assert timescale_enabled(connection) is False
    for module in (marketdata_policies, arbitrage_policies):
        operation = module.Migration.operations[0]
        with connection.schema_editor(atomic=False) as editor, CaptureQueriesContext(connection) as queries:
            operation.code(None, editor)
            operation.reverse_code(None, editor)
        assert [q["sql"] for q in queries.captured_queries if "timescaledb" in q["sql"] or "policy" in q["sql"]] == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('marketdata_candles_1m')")
        assert cursor.fetchone() == (None,)


def test_the_stand_ins_catch_a_wrong_argument_name_or_bad_syntax(stubs):
    good = timescale.retention_sql("marketdata_trade", drop_after="30 days")[0]
    assert run_statement(good) is None
    assert "does not exist" in run_statement(good.replace("drop_after", "drop_older_than"))
    bad_alter = "ALTER TABLE marketdata_trade SET (timescaledb.compress timescaledb.compress_segmentby = 'x')"
    assert "syntax error" in run_statement(bad_alter)
