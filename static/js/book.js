/* Order-book ladder and depth chart, with my own quotes marked. */
(function () {
  "use strict";
  function fmt(x) {
    if (x === undefined || x === null || x === "") return "";
    var s = String(x);
    if (s.indexOf(".") >= 0) s = s.replace(/0+$/, "").replace(/\.$/, "");
    return s;
  }
  function mineAt(quotes, side, price) {
    var p = Number(price), total = 0, found = false;
    (quotes || []).forEach(function (q) {
      if (q.side === side && Number(q.price) === p) { total += Number(q.qty); found = true; }
    });
    return found ? "◆ " + fmt(total.toFixed(8)) : "";
  }
  function mergeQuotes(levels, quotes, side) {
    // Show my quote prices even when they are not (yet) in the feed's top levels.
    var prices = {};
    levels.forEach(function (l) { prices[Number(l[0])] = true; });
    var out = levels.slice();
    (quotes || []).forEach(function (q) {
      if (q.side === side && !prices[Number(q.price)]) { out.push([q.price, "0"]); prices[Number(q.price)] = true; }
    });
    out.sort(function (a, b) { return side === "buy" ? Number(b[0]) - Number(a[0]) : Number(a[0]) - Number(b[0]); });
    return out;
  }
  window.MMBook = {
    renderLadder: function (table, book, quotes, rows) {
      rows = rows || 10;
      var bids = mergeQuotes(book.bids || [], quotes, "buy").slice(0, rows);
      var asks = mergeQuotes(book.asks || [], quotes, "sell").slice(0, rows);
      var tbody = table.tBodies[0];
      var html = "";
      var n = Math.max(bids.length, asks.length, 1);
      for (var i = 0; i < Math.min(rows, n); i++) {
        var b = bids[i] || ["", ""], a = asks[i] || ["", ""];
        var mb = b[0] ? mineAt(quotes, "buy", b[0]) : "", ma = a[0] ? mineAt(quotes, "sell", a[0]) : "";
        html += "<tr>" +
          '<td class="r mine bid">' + mb + "</td>" +
          '<td class="r">' + fmt(b[1]) + "</td>" +
          '<td class="r bid' + (mb ? " quoted" : "") + '">' + fmt(b[0]) + "</td>" +
          '<td class="ask' + (ma ? " quoted" : "") + '">' + fmt(a[0]) + "</td>" +
          "<td>" + fmt(a[1]) + "</td>" +
          '<td class="mine ask">' + ma + "</td></tr>";
      }
      tbody.innerHTML = html;
      table.dataset.updates = String(Number(table.dataset.updates || 0) + 1);
      var mine = (quotes || []).length;
      table.dataset.quotes = String(mine);
    },
    updateDepth: function (el, book, quotes) {
      if (!window.Plotly || !el || !el.data) return;
      function cum(levels) { var t = 0; return levels.map(function (l) { t += Number(l[1]); return t; }); }
      var bids = book.bids || [], asks = book.asks || [];
      quotes = quotes || [];
      Plotly.restyle(el, {
        x: [bids.map(function (l) { return Number(l[0]); }), asks.map(function (l) { return Number(l[0]); }),
            quotes.map(function (q) { return Number(q.price); })],
        y: [cum(bids), cum(asks), quotes.map(function () { return 0; })],
        text: [null, null, quotes.map(function (q) { return "my " + q.side + " " + q.qty + " @ " + q.price; })],
        "marker.color": [null, null, quotes.map(function (q) { return q.side === "buy" ? "#138a5b" : "#c23b3b"; })],
      }, [0, 1, 2]);
    },
  };
})();
