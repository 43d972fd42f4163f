#!/usr/bin/env python
"""Django's command-line utility. A bad setting prints one line naming it, not a traceback."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")
    from django.core.management import execute_from_command_line

    from mmsite.env import ConfigurationError

    try:
        execute_from_command_line(sys.argv)
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
