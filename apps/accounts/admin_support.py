"""Admin helpers shared by the apps: read-only model admins (writes go through services)."""

from __future__ import annotations

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Operators may look (change page shows every field read-only) but not add, edit or delete;
    changes go through the services (actions) so they are validated and audited."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Staff keep the view permission: the change page is shown read-only.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
