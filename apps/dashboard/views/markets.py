"""Market pages (depth, heat map, candles, recent trades) and the arbitrage tracker."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from apps.arbitrage.selectors import opportunity_list
from apps.dashboard import figures, live
from apps.exchanges.selectors import market_list
from apps.marketdata import selectors as md


@login_required
def market_index(request):
    markets = list(market_list())
    health = {(h.get("venue"), h.get("symbol")): h for h in live.feed_health_all()}
    rows = [{"market": m, "feed": health.get((m.venue, m.symbol))} for m in markets]
    return render(request, "dashboard/market_index.html", {"rows": rows})


@login_required
def market_detail(request, market_id: int):
    market = md.market_get(market_id=market_id)
    if market is None:
        raise Http404("no such market")
    now = timezone.now()
    book = live.latest_book(venue=market.venue, symbol=market.symbol)
    if book is None:
        depth = md.latest_depth(market=market)
        book = {"bids": depth.bids, "asks": depth.asks} if depth else {"bids": [], "asks": []}
    context = {
        "market": market,
        "book": book,
        "feed": live.feed_health(venue=market.venue, symbol=market.symbol),
        "depth_fig": figures.depth_chart(bids=book["bids"], asks=book["asks"]),
        "candle_fig": figures.candlestick(
            md.candles(market=market, interval="1m", start=now - timedelta(hours=3), end=now + timedelta(minutes=1))
        ),
        "heat_fig": figures.heatmap(md.heatmap(market=market, start=now - timedelta(hours=1), end=now, bucket="15s")),
        "trades": md.recent_trades(market=market, limit=40),
        "live_urls": {"book": f"/ws/book/{market.venue}/{market.symbol}/"},
    }
    return render(request, "dashboard/market_detail.html", context)


@login_required
def arbitrage(request):
    symbol = request.GET.get("symbol") or None
    opportunities = opportunity_list(user=request.user, symbol=symbol)
    recent = list(opportunities[:100])
    since = timezone.now() - timedelta(seconds=30)
    context = {
        "live_rows": [o for o in recent if o.ts >= since],
        "history": recent,
        "executed": list(opportunity_list(user=request.user, symbol=symbol, executed=True)[:30]),
        "symbol": symbol or "",
        "live_urls": {"arbitrage": "/ws/arbitrage/"},
    }
    return render(request, "dashboard/arbitrage.html", context)
