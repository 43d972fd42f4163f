from django.core.management.base import BaseCommand
from django.db import transaction

from apps.accounts.models import Role, User
from apps.accounts.services import user_create

DEMO_USERS = (
    ("demo", "demo-trader-2026", Role.TRADER, "demo@example.com"),
    ("ops", "ops-operator-2026", Role.OPERATOR, "ops@example.com"),
)


class Command(BaseCommand):
    help = "Create the demo users and demo data (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options):
        for username, password, role, email in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            user_create(username=username, password=password, role=role, email=email, check_password=False)
            self.stdout.write(f"created demo user {username} ({role})")
        self.stdout.write("demo data ready")
