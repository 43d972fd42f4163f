"""Settings: ``base`` reads the environment (through ``mmsite.env``); ``local``, ``production``
and ``test`` adjust it. ``DJANGO_SETTINGS_MODULE`` picks one (default ``mmsite.settings.local``)."""
