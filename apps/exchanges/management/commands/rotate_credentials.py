"""Re-encrypt every stored exchange credential with the newest key in CREDENTIALS_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand

from apps.exchanges.services import credentials_reencrypt_all


class Command(BaseCommand):
    help = (
        "Re-encrypt all exchange credentials with the first key of CREDENTIALS_ENCRYPTION_KEYS "
        "(put the new key first, keep the old ones after it, run this, then drop the old keys)."
    )

    def handle(self, *args, **options):
        changed = credentials_reencrypt_all()
        self.stdout.write(self.style.SUCCESS(f"re-encrypted the credentials of {changed} exchange account(s)"))
