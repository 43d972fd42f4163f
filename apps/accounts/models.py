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
