from tests.apps.marketdata.conftest import api_for, make_user, operator, trader, trader2, viewer  # noqa: F401
from tests.apps.notifications.conftest import sent  # noqa: F401
