/* The overview's net inventory table follows ws/portfolio/ (pushed by the portfolio sweep and
   recomputed by the server every few seconds). Text only: nothing from the server becomes HTML. */
(function () {
  function fmt(value, places) {
    if (value === null || value === undefined) return "";
    var n = Number(value);
    return isFinite(n) ? n.toLocaleString(undefined, { maximumFractionDigits: places }) : String(value);
  }
  function cell(row, text, right, muted) {
    var td = document.createElement("td");
    if (right) td.className = "r";
    if (muted) { var span = document.createElement("span"); span.className = "muted"; span.textContent = text; td.appendChild(span); }
    else td.textContent = text;
    row.appendChild(td);
  }
  function render(body, msg) {
    var rows = [];
    (msg.assets || []).forEach(function (a) {
      var tr = document.createElement("tr");
      tr.dataset.asset = a.asset;
      if (a.breached) tr.className = "breached";
      cell(tr, a.asset);
      cell(tr, fmt(a.spot, 8), true);
      cell(tr, fmt(a.perp, 8), true);
      cell(tr, fmt(a.net, 8), true);
      if (a.value === null) cell(tr, "no mark", true, true); else cell(tr, fmt(a.value, 2) + " " + a.quote, true);
      if (a.target === null) cell(tr, "none", true, true); else cell(tr, fmt(a.target, 8), true);
      cell(tr, a.deviation === null ? "" : fmt(a.deviation, 8), true);
      if (a.usage === null) cell(tr, "no limit", true, true);
      else cell(tr, Math.round(Number(a.usage) * 100) + "% of " + fmt(a.max_net, 8), true);
      if (a.hedge_enabled) cell(tr, "on (band " + fmt(a.band, 8) + ", bot " + a.hedge_bot + ")");
      else cell(tr, "off", false, true);
      rows.push(tr);
    });
    body.replaceChildren.apply(body, rows);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var body = document.getElementById("inventory-rows");
    if (!body || typeof LiveSocket === "undefined") return;
    new LiveSocket("/ws/portfolio/", function (msg) {
      if (msg.type === "inventory") render(body, msg);
    });
  });
})();
