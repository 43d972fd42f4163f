from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from apps.accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "role", "is_staff", "is_active", "last_login", "date_joined")
    list_filter = ("role", "is_staff", "is_active")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Role", {"fields": ("role",)}))
    add_fieldsets = (*BaseUserAdmin.add_fieldsets, ("Role", {"fields": ("role",)}))


from apps.accounts.admin_support import ReadOnlyAdmin  # noqa: E402
from apps.accounts.models import AuditLog  # noqa: E402


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    """Append-only: nobody can add, change or delete entries (the database refuses too)."""

    list_display = ("ts", "actor_name", "action", "object_type", "object_id", "ip", "message")
    list_filter = ("action", "object_type", "ts")
    search_fields = ("actor_name", "object_type", "object_id", "message")
    date_hierarchy = "ts"


# DRF registers its token model in the admin, and a token's key is its primary key: it shows in
# every list row and URL. Anyone with admin access could copy a trader's key and act as them, so
# tokens are not in the admin at all (deactivate the user to cut off their API access).
from rest_framework.authtoken.models import TokenProxy  # noqa: E402

if admin.site.is_registered(TokenProxy):  # rest_framework.authtoken comes first in INSTALLED_APPS
    admin.site.unregister(TokenProxy)
