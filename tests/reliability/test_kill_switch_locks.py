"""The operators' kill-all must not fail while bots write. Seen in the crash suite under load:
``POST /api/v1/kill-all/`` answered 500, ``deadlock detected ... while locking tuple in relation
"exchanges_exchangeaccount"``. Reproduced here deterministically with the locks a database
writer takes: inserting a row that references an account takes ``FOR KEY SHARE`` on that account,
which ``SELECT ... FOR UPDATE`` (``account_kill_switch``, and ``_transition`` through
``select_related``) waits for, while the writer then waits for a bot row the kill-all already
changed. The services lock with FOR NO KEY UPDATE (bot row only), which a writer's FOR KEY SHARE
does not block."""

from __future__ import annotations

import threading
import time

import pytest

from tests.workers.helpers import make_paper_bots, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_kill_all_survives_a_writer_holding_the_account_key_share_lock(clean_redis):
    import psycopg
    from django.db import connection

    from apps.accounts.models import User
    from apps.bots.controls import global_kill_switch

    _u1, first, bots1 = make_paper_bots(1, username="locks-a")
    _u2, second, _bots2 = make_paper_bots(1, username="locks-b")
    operator = User.objects.create_user(username="locks-ops", password="pw-12345678", is_staff=True)
    db = connection.settings_dict
    params = {"host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432, "user": db["USER"], "dbname": db["NAME"]}
    writer = psycopg.connect(**params)
    monitor = psycopg.connect(**params, autocommit=True)  # a fresh statistics snapshot each query
    outcome: dict = {}
    try:
        # The writer inserted a row for the account the kill-all reaches second: it holds the
        # foreign key's lock on it (what INSERT INTO orders_fill ... takes).
        first_id, second_id = sorted([first.pk, second.pk])
        writer.execute("SELECT 1 FROM exchanges_exchangeaccount WHERE id = %s FOR KEY SHARE", (second_id,))

        def kill_all():
            try:
                outcome["killed"] = global_kill_switch(actor=operator, reason="locks")
            except Exception as exc:  # the deadlock victim
                outcome["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                connection.close()

        thread = threading.Thread(target=kill_all)
        thread.start()

        def kill_all_waits() -> bool:
            row = monitor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            return row[0] > 0

        # Without the conflict the kill-all just finishes; with it, it waits for the writer.
        assert wait_until(lambda: kill_all_waits() or not thread.is_alive(), 15, 0.05), (
            "kill-all neither ran nor waited"
        )
        # The writer goes on: it records the state of a bot of the first account.
        bot_of_first = bots1[0].pk if first.pk == first_id else _bots2[0].pk
        started = time.monotonic()
        try:
            writer.execute("UPDATE bots_bot SET updated = now() WHERE id = %s", (bot_of_first,))
            writer.commit()
        except psycopg.errors.DeadlockDetected:
            writer.rollback()
            outcome["writer_aborted"] = True
        thread.join(30)
        assert not thread.is_alive()
        assert "error" not in outcome, f"the kill-all failed after {time.monotonic() - started:.1f}s: {outcome}"
        assert outcome["killed"] == 2
    finally:
        writer.close()
        monitor.close()
