from __future__ import annotations

import logging
import select
from typing import NamedTuple

from timescale.db.backends.postgresql.base import DatabaseWrapper as TimescaleDatabaseWrapper
from timescale.db.backends.postgresql.schema import TimescaleSchemaEditor

logger = logging.getLogger(__name__)


class TimescaleStatus(NamedTuple):
    usable: bool
    reason: str


def preloaded(shared_preload_libraries: str) -> bool:
    """Whether a ``shared_preload_libraries`` value lists TimescaleDB's library (by name or path)."""
    for item in shared_preload_libraries.split(","):
        name = item.strip().strip('"').rsplit("/", 1)[-1]
        if name.removesuffix(".so") == "timescaledb":
            return True
    return False


# pg_settings rather than current_setting(): a role without pg_read_all_settings gets no value
# for shared_preload_libraries instead of an error. ``timescaledb.disable_load`` is a boolean
# setting of TimescaleDB's loader library, registered once the library is loaded (a placeholder
# from postgresql.conf would be a string).
_STATUS_SQL = """
SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
       (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'),
       EXISTS (SELECT 1 FROM pg_settings WHERE name = 'timescaledb.disable_load' AND vartype = 'bool')
"""


def timescale_status(connection) -> TimescaleStatus:
    """Whether TimescaleDB can be used on this server, and why (or why not).

    Installed is not enough: TimescaleDB refuses to load unless its library is in
    ``shared_preload_libraries`` (``extension "timescaledb" must be preloaded``, a FATAL error
    that ends the session), so it is not even tried then. Usable means installed and either
    preloaded or its loader already loaded in this server process (an embedded build such as
    PGlite's loads it in-process). Nothing is created or loaded here."""
    cached = getattr(connection, "_mm_timescale_status", None)
    if cached is None:
        with connection.cursor() as cursor:
            cursor.execute(_STATUS_SQL)
            available, preload, loaded = cursor.fetchone()
        if not available:
            cached = TimescaleStatus(False, "not usable: the timescaledb extension is not installed on the server")
        elif preloaded(preload or ""):
            cached = TimescaleStatus(True, "usable: installed and in shared_preload_libraries")
        elif loaded:
            cached = TimescaleStatus(True, "usable: installed and loaded by the server without preloading")
        else:
            cached = TimescaleStatus(
                False,
                "not usable: the timescaledb extension is installed but not in shared_preload_libraries, "
                "so TimescaleDB would refuse to load; add it there and restart PostgreSQL",
            )
        connection._mm_timescale_status = cached
    return cached


def extension_available(connection) -> bool:
    """Whether TimescaleDB can be enabled here (installed and loadable, maybe not yet enabled)."""
    return timescale_status(connection).usable


def extension_enabled(connection) -> bool:
    """Whether TimescaleDB is enabled in this database and usable."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        if cursor.fetchone() is None:
            return False
    return timescale_status(connection).usable


class SchemaEditor(TimescaleSchemaEditor):
    """Creates hypertables only where TimescaleDB is enabled; plain tables otherwise."""

    def _timescale(self) -> bool:
        return extension_enabled(self.connection)

    def create_model(self, model):
        if self._timescale():
            super().create_model(model)
        else:
            super(TimescaleSchemaEditor, self).create_model(model)

    def add_field(self, model, field):
        if self._timescale():
            super().add_field(model, field)
        else:
            super(TimescaleSchemaEditor, self).add_field(model, field)

    def alter_field(self, model, old_field, new_field, strict=False):
        if self._timescale():
            super().alter_field(model, old_field, new_field, strict)
        else:
            super(TimescaleSchemaEditor, self).alter_field(model, old_field, new_field, strict)


class DatabaseWrapper(TimescaleDatabaseWrapper):
    SchemaEditorClass = SchemaEditor

    def is_usable(self):
        """Health check of a reused connection without a round trip when nothing is wrong.

        Django's check (``CONN_HEALTH_CHECKS``) sends ``SELECT 1`` at the start of every request
        that reuses a connection: one more round trip per request. An idle, healthy connection
        has nothing to read; one the server closed (restart, ``pg_terminate_backend``) is
        readable at once (its error message or EOF). So: a connection psycopg knows is broken is
        unusable; a readable one is checked with Django's ``SELECT 1``; anything else is fine."""
        conn = self.connection
        if conn is None or conn.closed or conn.broken:
            return False
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return super().is_usable() if readable else True

    def prepare_database(self):
        # Skip the parent's unconditional CREATE EXTENSION: on plain PostgreSQL it would fail.
        super(TimescaleDatabaseWrapper, self).prepare_database()
        status = timescale_status(self)
        if status.usable:
            with self.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            logger.info("TimescaleDB %s: time-series tables become hypertables", status.reason)
        else:
            logger.info("TimescaleDB %s: time-series tables stay plain tables", status.reason)
