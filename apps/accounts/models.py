from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    TRADER = "trader", "Trader"
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"


class User(AbstractUser):
    """A person using the portal. Traders own exchange accounts and bots; viewers read what is
    shared with them; operators (staff) see and control everything."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.TRADER)

    class Meta:
        db_table = "accounts_user"

    @property
    def is_operator(self) -> bool:
        return self.is_staff or self.role == Role.OPERATOR

    @property
    def can_trade(self) -> bool:
        return self.role in (Role.TRADER, Role.OPERATOR) or self.is_staff


class AuditAction(models.TextChoices):
    LOGIN = "login", "Login"
    LOGIN_FAILED = "login_failed", "Login failed"
    LOGOUT = "logout", "Logout"
    KEY_ADDED = "key_added", "API key added"
    KEY_ROTATED = "key_rotated", "API key rotated"
    ACCOUNT_CREATED = "account_created", "Exchange account created"
    ACCOUNT_DELETED = "account_deleted", "Exchange account deleted"
    ACCOUNT_VERIFIED = "account_verified", "Exchange account verified"
    BOT_CREATED = "bot_created", "Bot created"
    BOT_DELETED = "bot_deleted", "Bot deleted"
    BOT_STARTED = "bot_started", "Bot started"
    BOT_PAUSED = "bot_paused", "Bot paused"
    BOT_RESUMED = "bot_resumed", "Bot resumed"
    BOT_STOPPED = "bot_stopped", "Bot stopped"
    BOT_KILLED = "bot_killed", "Bot killed"
    BOT_SHARED = "bot_shared", "Bot shared"
    KILL_SWITCH = "kill_switch", "Kill switch"
    CONFIG_CHANGED = "config_changed", "Configuration changed"
    ORDER_CANCEL_REQUESTED = "order_cancel_requested", "Order cancel requested"
    ORDER_MANUAL = "order_manual", "Manual order sent"
    TELEGRAM_LINKED = "telegram_linked", "Telegram chat linked"
    TELEGRAM_COMMAND = "telegram_command", "Telegram command"


class AuditLog(models.Model):
    """Append-only record of who did what. A database trigger refuses UPDATE and DELETE.

    ``actor`` and ``owner`` (the owner of the object acted on) are kept without a database
    foreign-key constraint so that deleting a user never rewrites the log.
    """

    ts = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True, default="")
    owner = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    action = models.CharField(max_length=32, choices=AuditAction.choices, db_index=True)
    object_type = models.CharField(max_length=64, blank=True, default="")
    object_id = models.CharField(max_length=64, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    message = models.TextField(blank=True, default="")

    class Meta:
        db_table = "accounts_auditlog"
        ordering = ["-ts", "-id"]
        indexes = [models.Index(fields=["actor", "ts"]), models.Index(fields=["owner", "ts"])]

    def __str__(self) -> str:
        return f"{self.ts:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.action} {self.object_type}:{self.object_id}"
