// The case page's live updates (served at /static/case.js; the CSP allows no inline script).
//
// The page follows /cases/{id}/events: every event carries the case JSON and the panel's HTML,
// which replaces the panel in place, so a change costs no further request. When the stream is
// refused (429 at the server's cap) or cannot be kept, the page polls /cases/{id}/panel instead.
// A cut stream (a web restart) is reconnected by the browser with Last-Event-ID, and the server
// sends only what is newer. `data-live` on <body> says which path is in use ("stream"/"polling").
// The occlusion map is drawn by the worker after the result: once the result is shown, the page
// fetches itself a few times until the map is there and swaps the photo's figure.
(function () {
  "use strict";
  var form = document.getElementById("delete-form");
  if (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm("Delete this case and its photo for good?")) e.preventDefault();
    });
  }
  var panel = document.getElementById("case");
  if (!panel) return;
  var id = panel.getAttribute("data-case-id");
  var shown = panel.getAttribute("data-status");
  var source = null, timer = null;
  function terminal(s) { return s === "done" || s === "failed" || s === "refused" || s === "deleted"; }
  var mapTries = 0;
  function awaitMap() {
    var figure = document.getElementById("photo-map");
    if (!figure || document.getElementById("occlusion") || mapTries >= 10) return;
    mapTries += 1;
    setTimeout(function () {
      fetch("/cases/" + id, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("photo-map");
          if (fresh && doc.getElementById("occlusion")) {
            document.getElementById("photo-map").replaceWith(document.importNode(fresh, true));
          } else {
            awaitMap();
          }
        })
        .catch(function () {});
    }, 1500);
  }
  function stop() {
    if (source) { source.close(); source = null; }
    if (timer) { clearInterval(timer); timer = null; }
  }
  function show(html) {
    var holder = document.createElement("div");
    holder.innerHTML = html;
    var fresh = holder.querySelector("#case");
    if (fresh) { panel.replaceWith(fresh); panel = fresh; }
  }
  function apply(status, html) {
    if (status === "deleted") { stop(); window.location.href = "/?deleted"; return; }
    if (status !== shown && html) { show(html); shown = status; }
    if (terminal(status)) { stop(); if (status === "done") awaitMap(); }
  }
  function poll() {
    if (timer) return;
    document.body.setAttribute("data-live", "polling");
    timer = setInterval(function () {
      fetch("/cases/" + id + "/panel", { credentials: "same-origin" })
        .then(function (r) {
          if (r.status === 410) { apply("deleted", null); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (!html) return;
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.querySelector("#case");
          if (fresh) apply(fresh.getAttribute("data-status"), html);
        })
        .catch(function () {});
    }, 3000);
  }
  if (terminal(shown)) { if (shown === "done") awaitMap(); return; }
  if (!window.EventSource) { poll(); return; }
  source = new EventSource("/cases/" + id + "/events");
  document.body.setAttribute("data-live", "stream");
  source.addEventListener("status", function (e) {
    var data = JSON.parse(e.data);
    apply(data.status, data.html);
  });
  source.onerror = function () {
    // CONNECTING: the browser reconnects by itself (with Last-Event-ID). CLOSED: refused.
    if (source && source.readyState === EventSource.CLOSED) { source = null; poll(); }
  };
})();
