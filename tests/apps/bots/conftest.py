from tests.apps.bots.factories import operator, other_trader, sent_tasks, trader, viewer  # noqa: F401
