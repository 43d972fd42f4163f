/* Render every server-built Plotly figure on the page: <div data-fig="id"> + <script id="id" type="application/json">. */
(function () {
  "use strict";
  var config = { displayModeBar: false, responsive: true };
  window.MMCharts = {
    config: config,
    // root: render only the figures inside it (a panel loaded later), never redraw the page's
    // live charts from their initial data.
    renderAll: function (root) {
      (root && root.querySelectorAll ? root : document).querySelectorAll("[data-fig]").forEach(function (el) {
        var src = document.getElementById(el.dataset.fig);
        if (!src || !window.Plotly) return;
        var fig = JSON.parse(src.textContent);
        Plotly.react(el, fig.data, fig.layout, config);
      });
    },
  };
  document.addEventListener("DOMContentLoaded", function () { window.MMCharts.renderAll(document); });
})();
