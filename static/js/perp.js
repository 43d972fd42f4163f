/* A perpetual bot's card (templates/dashboard/_perp_card.html): every figure from the live status's
 * "perp" object, formatted exactly as the server's filters do (apps/dashboard/templatetags: num
 * rounds a decimal string half-even and drops trailing zeros; signed adds "+" and a colour class),
 * so the page and GET /api/v1/bots/<id>/perp/ show the same text for the same status. In hedge position
 * mode the legs table shows the long and the short leg. */
(function () {
  "use strict";
  function num(value, places) {
    if (value === undefined || value === null || value === "") return "—";
    var m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(String(value));
    if (!m) return String(value);
    var neg = m[1] === "-", whole = m[2] || "0", frac = m[3] || "";
    if (places !== undefined) {
      // integer arithmetic on the digits: round half to even at `places` decimals
      var keep = frac.slice(0, places), rest = frac.slice(places);
      while (keep.length < places) keep += "0";
      var scaled = BigInt(whole + keep);
      var half = rest.length ? rest.charAt(0) : "0", tail = rest.slice(1).replace(/0/g, "");
      if (half > "5" || (half === "5" && (tail.length > 0 || scaled % 2n === 1n))) scaled += 1n;
      var digits = scaled.toString();
      while (digits.length <= places) digits = "0" + digits;
      whole = places ? digits.slice(0, digits.length - places) : digits;
      frac = places ? digits.slice(digits.length - places) : "";
    }
    frac = frac.replace(/0+$/, "");
    whole = whole.replace(/^0+(?=\d)/, "");
    var text = whole + (frac ? "." + frac : "");
    if (text === "0") return "0";
    return (neg ? "-" : "") + text;
  }
  function signed(el, value, places) {
    var text = num(value, places), span = document.createElement("span");
    if (text === "—" || text === "0") { span.className = "muted"; span.textContent = text; }
    else if (text.charAt(0) === "-") { span.className = "neg"; span.textContent = text; }
    else { span.className = "pos"; span.textContent = "+" + text; }
    el.replaceChildren(span);
  }
  function set(id, text) { var el = document.getElementById(id); if (el) el.textContent = text; }
  function iso(ns) {
    if (ns === undefined || ns === null) return "—";
    return new Date(Math.floor(ns / 1e9) * 1000).toISOString().slice(0, 19) + "+00:00";
  }
  function update(p, ts) {
    var card = document.getElementById("perp-position");
    if (!card || !p) return;
    var idle = document.getElementById("perp-idle");
    if (idle) idle.remove();
    set("perp-margin-mode", p.margin_mode || "—");
    set("perp-position-mode", p.position_mode || "one_way");
    var legs = document.getElementById("perp-legs");
    if (legs) {
      legs.hidden = !p.legs;
      ["long", "short"].forEach(function (name) {
        var leg = (p.legs || {})[name] || {};
        set("perp-" + name + "-contracts", num(leg.contracts));
        set("perp-" + name + "-entry", num(leg.entry_price, 2));
        signed(document.getElementById("perp-" + name + "-unrealized"), leg.unrealized, 4);
        set("perp-" + name + "-margin-used", num(leg.margin_used, 2));
        signed(document.getElementById("perp-" + name + "-funding"), leg.funding, 4);
        set("perp-" + name + "-liquidation", num(leg.liquidation_price, 2));
      });
    }
    set("perp-leverage-head", p.leverage === undefined || p.leverage === null ? "—" : String(p.leverage));
    set("perp-leverage", p.leverage === undefined || p.leverage === null ? "—" : p.leverage + "x");
    set("perp-settle", p.settle || "—");
    set("perp-contracts", num(p.position_contracts));
    set("perp-entry", num(p.entry_price, 2));
    set("perp-mark", num(p.mark_price, 2));
    signed(document.getElementById("perp-unrealized"), p.unrealized, 4);
    signed(document.getElementById("perp-realized"), p.realized, 4);
    set("perp-fees", num(p.fees, 4));
    set("perp-margin-used", num(p.margin_used, 2));
    set("perp-margin-free", num(p.margin_free, 2));
    set("perp-liquidation", num(p.liquidation_price, 2));
    var d = p.liquidation_distance;
    set("perp-liquidation-distance", d === undefined || d === null ? "—" : (d * 100).toFixed(2) + " %");
    var paused = document.getElementById("perp-paused");
    if (paused) paused.hidden = !p.liquidation_paused;
    set("perp-margin-balance", num(p.margin_balance, 2));
    set("perp-funding-label", String(p.funding || "").charAt(0) === "-" ? "Funding paid" : "Funding received");
    signed(document.getElementById("perp-funding"), p.funding, 4);
    set("perp-funding-rate", num(p.funding_rate));
    set("perp-funding-source", p.funding_source || "");
    set("perp-next-funding", p.next_funding_ts === undefined || p.next_funding_ts === null ? "—" : iso(p.next_funding_ts));
    // the status time in ns, as JSON.parse gives it: a double, so within a microsecond of the API's
    card.dataset.asOf = ts === undefined || ts === null ? "" : BigInt(Math.round(ts)).toString();
    card.dataset.updates = String(Number(card.dataset.updates || 0) + 1);
  }
  window.MMPerp = { update: update, num: num };
})();
