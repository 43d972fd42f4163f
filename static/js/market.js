/* Live market charts: poll the page's chart endpoint (candles of the chosen timeframe, the heat
 * map, the latest trades) every few seconds and redraw what changed. Each chart counts its
 * changes in data-changes (the browser test reads it).
 *   MMMarket.follow({url: "/markets/3/live/", candles: el, heatmap: el|null, trades: tbody|null, select: el|null}) */
(function () {
  "use strict";
  var PERIOD_MS = 2500;
  function draw(el, fig) {
    if (!el || !fig || !window.Plotly) return;
    var sig = JSON.stringify(fig.data);
    if (sig === el._sig) return;
    el._sig = sig;
    el.classList.remove("empty");
    // A placeholder text ("loading candles…") goes before the first plot only: clearing the
    // element later would remove Plotly's own drawing and leave the chart blank.
    if (!el.dataset.fig && !el._fullLayout) el.textContent = "";
    Plotly.react(el, fig.data, fig.layout, window.MMCharts ? MMCharts.config : { displayModeBar: false, responsive: true });
    el.dataset.changes = String(Number(el.dataset.changes || 0) + 1);
  }
  function fmtTime(iso) { return new Date(iso).toISOString().substr(11, 12); }  // HH:MM:SS.mmm UTC, as the server renders
  function trades(tbody, rows) {
    if (!tbody || !rows) return;
    var sig = rows.length ? rows[0].ts + rows[0].price + rows.length : "";
    if (sig === tbody._sig) return;
    tbody._sig = sig;
    tbody.innerHTML = rows.map(function (t) {
      var cls = t.aggressor === "buy" ? "bid" : "ask";
      return "<tr><td>" + fmtTime(t.ts) + '</td><td class="' + cls + '">' + t.aggressor + '</td><td class="r">' +
        t.price.replace(/\.?0+$/, "") + '</td><td class="r">' + t.qty.replace(/\.?0+$/, "") + "</td></tr>";
    }).join("") || '<tr><td colspan="4" class="muted">No stored trades yet.</td></tr>';
    tbody.dataset.changes = String(Number(tbody.dataset.changes || 0) + 1);
  }
  function follow(opts) {
    var busy = false;
    function tick() {
      if (busy || document.hidden) return;
      busy = true;
      var tf = opts.select ? opts.select.value : "1m";
      var url = opts.url + (opts.url.indexOf("?") >= 0 ? "&" : "?") + "tf=" + encodeURIComponent(tf) + (opts.heatmap ? "" : "&heat=0");
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) {
          if (!body) return;
          draw(opts.candles, body.candles);
          draw(opts.heatmap, body.heatmap);
          trades(opts.trades, body.trades);
        })
        .catch(function () { /* next tick retries */ })
        .then(function () { busy = false; });
    }
    if (opts.select) opts.select.addEventListener("change", function () { if (opts.candles) opts.candles._sig = null; tick(); });
    setInterval(tick, PERIOD_MS);
    setTimeout(tick, 300);
  }
  window.MMMarket = { follow: follow };
})();
