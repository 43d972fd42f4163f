from django.contrib import admin

from apps.derivatives.models import FundingPayment, FundingRate


@admin.register(FundingRate)
class FundingRateAdmin(admin.ModelAdmin):
    list_display = ("venue", "symbol", "ts", "rate", "source")
    list_filter = ("venue", "symbol", "source")


@admin.register(FundingPayment)
class FundingPaymentAdmin(admin.ModelAdmin):
    list_display = ("bot", "account", "symbol", "ts", "amount", "currency", "payment_id")
    list_filter = ("symbol", "currency")
    raw_id_fields = ("bot", "account")
