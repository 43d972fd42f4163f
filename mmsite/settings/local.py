"""Development and the demo: DEBUG defaults to on (insecure keys allowed), everything else from the environment."""

import os

os.environ.setdefault("DEBUG", "1")

from mmsite.settings.base import *  # noqa: F403
