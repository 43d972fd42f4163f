/* A hedged maker's hedge-market list follows the chosen hedge account without a page reload
 * (the new-bot form and the bot page's configuration form).
 *
 * On a change of the "hedge account" select (id "id-params.hedge_account"), the account is read
 * from the REST API (GET /api/v1/exchange-accounts/<id>/: its venue) and that venue's active
 * markets (GET /api/v1/markets/?venue=<venue>&active=true, every page) replace the options of the
 * "hedge market" select ("<symbol> · <venue>", as the server renders them). The market chosen
 * before stays chosen when the new venue lists it, else the first one is. The field's help says
 * which venue the markets are from; a failed request says so there and leaves the list as it
 * was (the service refuses a market off the account's venue in any case). No framework. */
(function () {
  "use strict";

  var PAGE = 200;

  function getJSON(url) {
    return fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}}).then(function (r) {
      if (!r.ok) throw new Error(url + " answered " + r.status);
      return r.json();
    });
  }

  function venueMarkets(venue) {
    var out = [];
    function page(url) {
      return getJSON(url).then(function (body) {
        out = out.concat(body.results || []);
        return body.next ? page(body.next) : out;
      });
    }
    return page("/api/v1/markets/?active=true&ordering=symbol&limit=" + PAGE + "&venue=" + encodeURIComponent(venue));
  }

  function help(select) {
    var field = select.closest(".field");
    if (!field) return null;
    var node = field.querySelector(".help");
    if (!node) {
      node = document.createElement("div");
      node.className = "help";
      select.insertAdjacentElement("afterend", node);
    }
    return node;
  }

  function fill(select, markets, venue) {
    var before = select.value;
    select.textContent = "";
    markets.forEach(function (m) {
      var o = document.createElement("option");
      o.value = String(m.id);
      o.textContent = m.symbol + " · " + m.venue;
      select.appendChild(o);
    });
    if (!markets.length) {
      var none = document.createElement("option");
      none.value = "";
      none.textContent = "none available";
      select.appendChild(none);
    }
    var kept = markets.some(function (m) { return String(m.id) === before; });
    select.value = kept ? before : (markets.length ? String(markets[0].id) : "");
    select.dataset.venue = venue;
    select.dispatchEvent(new Event("change", {bubbles: true}));
  }

  function follow(account, market) {
    var serial = 0;
    account.addEventListener("change", function () {
      var mine = ++serial, note = help(market);
      if (!account.value) return;
      market.setAttribute("aria-busy", "true");
      getJSON("/api/v1/exchange-accounts/" + encodeURIComponent(account.value) + "/")
        .then(function (acct) {
          return venueMarkets(acct.venue).then(function (markets) { return [acct.venue, markets]; });
        })
        .then(function (res) {
          if (mine !== serial) return;  /* another account was chosen meanwhile */
          fill(market, res[1], res[0]);
          if (note) note.textContent = "a market on " + res[0] + ", the hedge account's venue";
        })
        .catch(function (err) {
          if (mine !== serial) return;
          if (note) note.textContent = "the hedge account's markets could not be loaded (" + err.message + ")";
        })
        .then(function () { if (mine === serial) market.removeAttribute("aria-busy"); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var account = document.getElementById("id-params.hedge_account");
    var market = document.getElementById("id-params.hedge_market");
    if (account && market) follow(account, market);
  });
})();
