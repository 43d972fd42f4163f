from __future__ import annotations

import logging

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

    def prepare_database(self):
        # Skip the parent's unconditional CREATE EXTENSION: on plain PostgreSQL it would fail.
        super(TimescaleDatabaseWrapper, self).prepare_database()
        if extension_available(self):
            with self.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            logger.info("TimescaleDB is available: time-series tables become hypertables")
