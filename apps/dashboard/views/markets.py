"""Market pages (depth, heat map, candles, recent trades) and the arbitrage tracker."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.urls import reverse
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


# Candle width -> how far back the chart reaches.
TIMEFRAMES = {
    "1m": (timedelta(minutes=1), timedelta(hours=3)),
    "5m": (timedelta(minutes=5), timedelta(hours=12)),
    "15m": (timedelta(minutes=15), timedelta(days=2)),
    "1h": (timedelta(hours=1), timedelta(days=7)),
}
LIVE_TRADES = 40


def _candles(market, timeframe, now):
    width, span = timeframe
    return md.candles(market=market, interval=width, start=now - span, end=now + width)


def _heat(market, now):
    return md.heatmap(market=market, start=now - timedelta(hours=1), end=now + timedelta(seconds=1), bucket="15s")


@login_required
def market_live(request, market_id: int):
    """The market page's charts as JSON, polled by the page every few seconds: candles of the
    chosen timeframe (``tf``; with ``bot``: that bot's fills marked), the heat map and the
    latest trades."""
    from apps.bots.selectors import bot_list
    from apps.orders.models import Fill

    market = md.market_get(market_id=market_id)
    if market is None:
        raise Http404("no such market")
    tf = request.GET.get("tf", "1m")
    if tf not in TIMEFRAMES:
        return JsonResponse({"error": f"tf: {tf!r} is not a timeframe; accepted: {', '.join(TIMEFRAMES)}"}, status=400)
    now = timezone.now()
    live.register_feed_interest(venue=market.venue, symbol=market.symbol)
    fills = []
    if request.GET.get("bot"):
        bot = bot_list(user=request.user).filter(pk=request.GET["bot"], market=market).first()
        if bot is None:
            raise Http404("no such bot on this market")
        since = now - TIMEFRAMES[tf][1]
        fills = list(
            Fill.objects.filter(bot=bot, ts__gte=since).order_by("-ts").values("ts", "side", "price", "quantity")[:2000]
        )
    body = {
        "candles": figures.candlestick(_candles(market, TIMEFRAMES[tf], now), fills=fills, timeframe=tf),
        "trades": [
            {"ts": t.ts.isoformat(), "aggressor": t.aggressor, "price": str(t.price), "qty": str(t.qty)}
            for t in md.recent_trades(market=market, limit=LIVE_TRADES)
        ],
    }
    if request.GET.get("heat", "1") == "1":
        body["heatmap"] = figures.heatmap(_heat(market, now))
    return JsonResponse(body)


@login_required
def market_detail(request, market_id: int):
    market = md.market_get(market_id=market_id)
    if market is None:
        raise Http404("no such market")
    now = timezone.now()
    live.register_feed_interest(venue=market.venue, symbol=market.symbol)
    book = live.latest_book(venue=market.venue, symbol=market.symbol)
    if book is None:
        depth = md.latest_depth(market=market)
        book = {"bids": depth.bids, "asks": depth.asks} if depth else {"bids": [], "asks": []}
    context = {
        "market": market,
        "book": book,
        "feed": live.feed_health(venue=market.venue, symbol=market.symbol),
        "depth_fig": figures.depth_chart(bids=book["bids"], asks=book["asks"]),
        "candle_fig": figures.candlestick(_candles(market, TIMEFRAMES["1m"], now)),
        "heat_fig": figures.heatmap(_heat(market, now)),
        "trades": md.recent_trades(market=market, limit=40),
        "timeframes": list(TIMEFRAMES),
        "live_urls": {
            "book": f"/ws/book/{market.venue}/{market.symbol}/",
            "charts": reverse("market-live", args=[market.pk]),
        },
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
