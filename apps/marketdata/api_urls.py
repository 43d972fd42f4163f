"""REST API routes of the marketdata app (mounted under /api/v1/)."""

from django.urls import path

from apps.marketdata import api

urlpatterns = [
    path("marketdata/candles/", api.CandlesView.as_view(), name="marketdata-candles"),
    path("marketdata/top-of-book/", api.TopOfBookView.as_view(), name="marketdata-top-of-book"),
    path("marketdata/trades/", api.TradesView.as_view(), name="marketdata-trades"),
    path("marketdata/depth/", api.DepthView.as_view(), name="marketdata-depth"),
    path("marketdata/heatmap/", api.HeatmapView.as_view(), name="marketdata-heatmap"),
]
