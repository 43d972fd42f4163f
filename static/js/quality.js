/* Bot page: the quality panel (loaded after the page, refreshed every 30 s and on a window
 * change), the candles with my fills (polled), and the queue position of each working order. */
(function () {
  "use strict";
  var REFRESH_MS = 30000;
  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.getElementById("quality-panel");
    var windowName = "1h";
    function load() {
      if (!panel) return;
      fetch(panel.dataset.url + "?window=" + encodeURIComponent(windowName), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          panel.innerHTML = html;
          if (window.MMCharts) MMCharts.renderAll(panel);
          panel.dataset.loaded = String(Number(panel.dataset.loaded || 0) + 1);
        })
        .catch(function (status) { panel.innerHTML = '<p class="error">Quality figures could not be loaded (' + status + ").</p>"; });
    }
    document.querySelectorAll("#quality .windows button").forEach(function (b) {
      b.addEventListener("click", function () {
        windowName = b.dataset.window;
        document.querySelectorAll("#quality .windows button").forEach(function (o) { o.classList.toggle("on", o === b); });
        load();
      });
    });
    load();
    setInterval(function () { if (!document.hidden) load(); }, REFRESH_MS);

    var urls = JSON.parse(document.getElementById("live-urls").textContent);
    if (window.MMMarket) MMMarket.follow({ url: urls.charts, candles: document.getElementById("chart-candles"), select: document.getElementById("timeframe") });
  });

  /* Estimated queue position: the size resting ahead of each of my orders at its level (taken as
   * having joined last, so the level's size minus my own) plus every better level. */
  window.MMQueue = {
    render: function (tbody, book, quotes) {
      if (!tbody) return;
      var rows = (quotes || []).map(function (q) {
        var buy = q.side === "buy", levels = (buy ? book.bids : book.asks) || [], price = Number(q.price);
        var ahead = 0, away = 0;
        for (var i = 0; i < levels.length; i++) {
          var p = Number(levels[i][0]), size = Number(levels[i][1]);
          var better = buy ? p > price : p < price;
          if (better) { ahead += size; away += 1; continue; }
          if (p === price) ahead += Math.max(0, size - Number(q.qty));
          break;
        }
        return "<tr><td class=\"" + (buy ? "bid" : "ask") + "\">" + q.side + '</td><td class="r">' + q.price + '</td><td class="r">' + q.qty +
          '</td><td class="r">' + (Math.round(ahead * 1e8) / 1e8) + '</td><td class="r">' + away + "</td></tr>";
      });
      tbody.innerHTML = rows.join("") || '<tr><td colspan="5" class="muted">No working orders.</td></tr>';
    },
  };
})();
