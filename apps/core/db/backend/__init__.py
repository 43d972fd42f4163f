"""PostgreSQL backend that uses TimescaleDB when the extension is usable, and plain
PostgreSQL otherwise.

django-timescaledb's backend assumes the extension exists: it turns every model with a
``TimescaleDateTimeField`` into a hypertable and fails on plain PostgreSQL. This backend asks
the server first (``base.timescale_status``: installed and loadable) and only then enables
the extension and creates hypertables, so the same models and migrations run on both.
Detection happens when the schema is created (migrate time); see ``apps.core.timescale`` for the runtime checks.
"""
