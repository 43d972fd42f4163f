from __future__ import annotations

import logging
import select

from timescale.db.backends.postgresql.base import DatabaseWrapper as TimescaleDatabaseWrapper
from timescale.db.backends.postgresql.schema import TimescaleSchemaEditor

logger = logging.getLogger(__name__)


def extension_available(connection) -> bool:
    """Whether the server can load TimescaleDB (installed in the cluster, maybe not yet enabled)."""
    cached = getattr(connection, "_mm_timescale_available", None)
    if cached is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
            cached = cursor.fetchone() is not None
        connection._mm_timescale_available = cached
    return cached


def extension_enabled(connection) -> bool:
    """Whether TimescaleDB is enabled in this database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        return cursor.fetchone() is not None


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
        if extension_available(self):
            with self.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            logger.info("TimescaleDB is available: time-series tables become hypertables")
