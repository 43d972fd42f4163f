from tests.apps.marketdata.conftest import make_user, operator, trader, viewer  # noqa: F401
from tests.apps.notifications.conftest import make_bot  # noqa: F401
