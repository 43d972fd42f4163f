/* The overview's legs line of a hedged bot (maker and hedge positions, net exposure, why quoting
   stopped), filled from the bot socket's "hedge_leg" message (apps.dashboard.live.hedge_leg_message:
   the figures already formatted as the page renders them). */
var MMHedgeLeg = {
  fill: function (line, msg) {
    if (!line) return;
    ["maker_position", "hedge_position", "exposure"].forEach(function (name) {
      var el = line.querySelector("." + name.replace("_", "-"));
      if (el) el.textContent = msg[name];
    });
    var halted = line.querySelector(".halted");
    if (!halted) return;
    halted.textContent = "";
    if (msg.halted) {
      var badge = document.createElement("span");
      badge.className = "badge state-error";
      badge.textContent = "quoting stopped: " + msg.halted;
      halted.appendChild(document.createTextNode(" "));
      halted.appendChild(badge);
    }
  }
};
