/* MMPnl.fill(el, part): write a bot's PnL figures ({total, realized, unrealized, fees, fills}
 * from a "pnl" websocket message) into the elements of that class inside el. */
(function () {
  "use strict";
  function trim(text) { return text.indexOf(".") >= 0 ? text.replace(/0+$/, "").replace(/\.$/, "") : text; }
  function plain(x) { return x === null || x === undefined ? "—" : trim(String(x)); }
  function signed(el, x) {
    if (x === null || x === undefined) { el.textContent = "—"; el.className = "total muted"; return; }
    var text = trim(String(x)), n = Number(x);
    if (n === 0) { el.textContent = "0"; el.className = "total muted"; return; }
    el.textContent = (n > 0 ? "+" : "") + text;
    el.className = "total " + (n > 0 ? "pos" : "neg");
  }
  window.MMPnl = {
    fill: function (el, part) {
      if (!el || !part) return;
      var total = el.querySelector(".total");
      if (total) signed(total, part.total);
      ["realized", "unrealized", "fees", "fills", "volume"].forEach(function (key) {
        var node = el.querySelector("." + key);
        if (node && key in part) node.textContent = plain(part[key]);
      });
      el.dataset.updated = String(Date.now());
    },
  };
})();
