/* LiveSocket: a websocket that reconnects by itself with exponential backoff and jitter.
 * The page keeps working while it is down; the top bar shows "reconnecting…".
 *   var s = new LiveSocket("/ws/bot/3/", function (msg) { ... });
 * Close codes 4401 (not signed in), 4403 (not allowed) and 4404 are final: no retry. */
(function () {
  "use strict";
  var sockets = [];

  function indicator() {
    var el = document.getElementById("live-status");
    if (!el) return;
    var down = sockets.filter(function (s) { return !s.open && !s.final; }).length;
    var refused = sockets.filter(function (s) { return s.final; }).length;
    el.hidden = sockets.length === 0;
    if (refused) { el.textContent = "live updates refused"; el.className = "live-status refused"; }
    else if (down) { el.textContent = "reconnecting…"; el.className = "live-status down"; }
    else { el.textContent = "live"; el.className = "live-status up"; }
  }

  function LiveSocket(path, onMessage, options) {
    this.path = path;
    this.onMessage = onMessage;
    this.options = options || {};
    this.attempt = 0;
    this.open = false;
    this.final = false;
    this.maxDelay = this.options.maxDelay || 15000;
    sockets.push(this);
    this.connect();
  }

  LiveSocket.prototype.url = function () {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    return proto + location.host + this.path;
  };

  LiveSocket.prototype.connect = function () {
    var self = this;
    var ws;
    try { ws = new WebSocket(this.url()); } catch (e) { this.schedule(); return; }
    this.ws = ws;
    ws.onopen = function () { self.open = true; self.attempt = 0; indicator(); if (self.options.onOpen) self.options.onOpen(); };
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      try { self.onMessage(msg); } catch (e) { if (window.console) console.error("live update failed", e); }
    };
    ws.onclose = function (ev) {
      self.open = false;
      if (ev.code === 4401 || ev.code === 4403 || ev.code === 4404) { self.final = true; self.code = ev.code; indicator(); return; }
      indicator();
      self.schedule();
    };
    ws.onerror = function () { /* onclose follows */ };
  };

  LiveSocket.prototype.schedule = function () {
    var base = Math.min(this.maxDelay, 500 * Math.pow(2, this.attempt));
    var delay = base / 2 + Math.random() * base / 2;  // "equal jitter"
    this.attempt += 1;
    var self = this;
    setTimeout(function () { self.connect(); }, delay);
  };

  LiveSocket.prototype.close = function () { this.final = true; if (this.ws) this.ws.close(); };

  window.LiveSocket = LiveSocket;
  window.addEventListener("online", function () {
    sockets.forEach(function (s) { if (!s.open && !s.final) { s.attempt = 0; } });
  });
})();
