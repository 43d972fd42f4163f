from django.contrib import admin

from apps.derivatives.models import FundingRate


@admin.register(FundingRate)
class FundingRateAdmin(admin.ModelAdmin):
    list_display = ("venue", "symbol", "ts", "rate", "source")
    list_filter = ("venue", "symbol", "source")
