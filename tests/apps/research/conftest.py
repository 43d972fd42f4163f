"""Fixtures shared by the research tests."""

from tests.apps.portfolio.test_analytics_api import users  # noqa: F401 (a fixture: alice, bob traders; olga operator)
