from tests.apps.marketdata.conftest import make_user, trader  # noqa: F401
