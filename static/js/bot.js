/* Bot page: live book (ladder + depth with my quotes), live status (KPIs, PnL/inventory/drawdown), live fills. */
(function () {
  "use strict";
  function json(id) { var el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; }
  function fmt(x, places) {
    if (x === undefined || x === null || x === "") return "—";
    var n = Number(x);
    if (places !== undefined && isFinite(n)) return n.toFixed(places);
    return String(x);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var urls = json("live-urls");
    // Event log filter: by kind and by text (code or message).
    var kindSel = document.getElementById("event-kind"), search = document.getElementById("event-search");
    function filterEvents() {
      var kind = kindSel ? kindSel.value : "", text = search ? search.value.toLowerCase() : "";
      document.querySelectorAll("#events tr[data-kind]").forEach(function (tr) {
        var show = (!kind || tr.dataset.kind === kind) && (!text || tr.textContent.toLowerCase().indexOf(text) >= 0);
        tr.hidden = !show;
      });
    }
    if (kindSel) kindSel.addEventListener("change", filterEvents);
    if (search) search.addEventListener("input", filterEvents);
    var book = json("initial-book") || { bids: [], asks: [] };
    var quotes = json("initial-quotes") || [];
    var ladder = document.getElementById("ladder");
    var depth = document.getElementById("chart-depth");
    var pending = false;
    function draw() {
      pending = false;
      MMBook.renderLadder(ladder, book, quotes);
      MMBook.updateDepth(depth, book, quotes);
      if (window.MMQueue) MMQueue.render(document.querySelector("#queue tbody"), book, quotes);
    }
    function schedule() { if (!pending) { pending = true; requestAnimationFrame(draw); } }
    MMBook.renderLadder(ladder, book, quotes);
    setTimeout(schedule, 0);  // the queue table once every script has loaded

    new LiveSocket(urls.book, function (msg) {
      if (msg.type !== "book") return;
      book = msg;
      var ts = document.getElementById("book-ts");
      if (ts && msg.ts) ts.textContent = new Date(msg.ts / 1e6).toLocaleTimeString();
      schedule();
    });

    var fillsBody = document.querySelector("#fills tbody");
    var pnlEl = document.getElementById("chart-pnl"), invEl = document.getElementById("chart-inventory"),
        ddEl = document.getElementById("chart-drawdown");
    var lastPoint = 0, actual = null, ddPeak = null;
    function extend(el, update, traces) {
      // New points, then both axes fitted again so no line runs off the plot.
      Plotly.extendTraces(el, update, traces, 2000);
      Plotly.relayout(el, { "xaxis.autorange": true, "yaxis.autorange": true });
    }
    function updateRisk(used) {
      // How close each limit is, from the live status (position, drawdown, open orders).
      document.querySelectorAll("#risk-table tr[data-risk]").forEach(function (row) {
        var key = row.dataset.risk, limit = Number(row.dataset.limit);
        if (!key || !(key in used) || used[key] === undefined || !(limit > 0)) return;
        var value = Math.abs(Number(used[key])), pct = Math.min(1000, value / limit * 100);
        row.querySelector(".used").textContent = String(used[key]);
        row.querySelector(".pct").textContent = pct.toFixed(0) + "%";
        var bar = row.querySelector(".bar");
        bar.style.width = Math.min(100, pct) + "%";
        bar.className = "bar " + (pct < 70 ? "ok" : pct < 90 ? "warn" : "danger");
      });
    }
    new LiveSocket(urls.bot, function (msg) {
      if (msg.type === "status") {
        if (actual === "stopped" || actual === "error") return;  // a late status of a stopped loop
        quotes = msg.orders || [];
        document.getElementById("kpi-equity").textContent = fmt(msg.equity, 2);
        document.getElementById("kpi-risk").textContent = msg.risk || "—";
        document.getElementById("kpi-orders").textContent = String(quotes.length);
        if (msg.state) {
          var st = document.querySelector("#bot-state .badge");
          if (st) { st.textContent = msg.state; st.className = "badge state-" + msg.state; }
        }
        updateRisk({ position: msg.position, drawdown: msg.drawdown, orders: quotes.length });
        if (msg.perp && window.MMPerp) MMPerp.update(msg.perp, msg.ts);
        var now = Date.now();
        if (window.Plotly && msg.ts && now - lastPoint > 1000) {
          lastPoint = now;
          var x = new Date(msg.ts / 1e6).toISOString();
          if (invEl && invEl.data) extend(invEl, { x: [[x]], y: [[Number(msg.position)]] }, [0]);
        }
        schedule();
      } else if (msg.type === "pnl") {
        var s = msg.since_start;
        if (window.Plotly && pnlEl && pnlEl.data && s.total !== null) {
          var px = new Date().toISOString();
          extend(pnlEl, { x: [[px], [px], [px]], y: [[Number(s.total)], [Number(s.realized)], [Number(s.unrealized)]] }, [0, 1, 2]);
          pnlEl.dataset.points = String(Number(pnlEl.dataset.points || 0) + 1);
          // The bot PnL's drawdown: below its best so far (figures.bot_pnl_drawdown), never the account's equity.
          if (ddEl && ddEl.data) {
            if (ddPeak === null) ddPeak = Math.max.apply(null, [0].concat(pnlEl.data[0].y.slice(0, -1).filter(function (v) { return v !== null; }).map(Number)));
            ddPeak = Math.max(ddPeak, Number(s.total));
            extend(ddEl, { x: [[px]], y: [[Number(s.total) - ddPeak]] }, [0]);
          }
        }
        document.querySelectorAll("#bot-pnl .pnl-today").forEach(function (el) { MMPnl.fill(el, msg.today); });
        document.querySelectorAll("#bot-pnl .pnl-since").forEach(function (el) { MMPnl.fill(el, msg.since_start); });
        document.getElementById("kpi-position").textContent = fmt(msg.position);
        document.getElementById("kpi-avg-cost").textContent = fmt(msg.avg_cost);
        document.getElementById("kpi-mark").textContent = fmt(msg.mark);
        document.getElementById("kpi-mark-source").textContent = msg.mark_source || "";
        document.getElementById("bot-pnl").dataset.updates = String(Number(document.getElementById("bot-pnl").dataset.updates || 0) + 1);
      } else if (msg.type === "fill" && fillsBody) {
        var empty = fillsBody.querySelector(".empty-row");
        if (empty) empty.remove();
        var tr = document.createElement("tr");
        tr.className = "new";
        var t = new Date().toISOString().substr(11, 8);  // HH:MM:SS UTC, as the server renders
        tr.innerHTML = "<td>" + t + '</td><td class="' + (msg.side === "buy" ? "bid" : "ask") + '">' + msg.side +
          (msg.liquidation ? ' <span class="badge liquidation">liquidation</span>' : "") +
          '</td><td class="r">' + msg.price + '</td><td class="r">' + msg.qty + '</td><td class="r fee">' +
          (msg.fee === undefined ? "" : fmt(msg.fee, 6)) + '</td><td class="r muted">…</td>';
        fillsBody.insertBefore(tr, fillsBody.firstChild);
        while (fillsBody.rows.length > 50) fillsBody.deleteRow(fillsBody.rows.length - 1);
      } else if (msg.type === "state") {
        var badge = document.querySelector("#bot-state .badge");
        if (badge) { badge.textContent = msg.actual_state; badge.className = "badge state-" + msg.actual_state; }
        actual = msg.actual_state;
        if (actual !== "running" && actual !== "starting") {
          // Not quoting: what is still open is what the database says (the loop publishes no more status).
          quotes = msg.open_orders || [];
          document.getElementById("kpi-orders").textContent = String(quotes.length);
          schedule();
        }
      }
    });
  });
})();
