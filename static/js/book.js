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
  function through(book, side, price) {
    // A quote priced through the book shown (a bid at or above its best ask, an ask at or below
    // its best bid): the book and the quotes come from different updates (the book several
    // times a second, the bot's open orders once a second), or the order is about to fill.
    var p = Number(price), bestBid = book.bids && book.bids.length ? Number(book.bids[0][0]) : NaN,
        bestAsk = book.asks && book.asks.length ? Number(book.asks[0][0]) : NaN;
    return side === "buy" ? p >= bestAsk : p <= bestBid;
  }
  var THROUGH_TITLE = "priced through the book shown: the book is newer than your open orders " +
    "(they refresh once a second), or the order is filling";
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
        var tb = mb && through(book, "buy", b[0]), ta = ma && through(book, "sell", a[0]);
        html += "<tr>" +
          '<td class="r mine bid' + (tb ? ' through" title="' + THROUGH_TITLE : "") + '">' + (tb ? "⚠ " : "") + mb + "</td>" +
          '<td class="r">' + fmt(b[1]) + "</td>" +
          '<td class="r bid' + (mb ? " quoted" : "") + (tb ? " through" : "") + '">' + fmt(b[0]) + "</td>" +
          '<td class="ask' + (ma ? " quoted" : "") + (ta ? " through" : "") + '">' + fmt(a[0]) + "</td>" +
          "<td>" + fmt(a[1]) + "</td>" +
          '<td class="mine ask' + (ta ? ' through" title="' + THROUGH_TITLE : "") + '">' + (ta ? "⚠ " : "") + ma + "</td></tr>";
      }
      tbody.innerHTML = html;
      table.dataset.updates = String(Number(table.dataset.updates || 0) + 1);
      var mine = (quotes || []).length;
      table.dataset.quotes = String(mine);
      table.dataset.through = String(tbody.querySelectorAll("td.mine.through").length);
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
