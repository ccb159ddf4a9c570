// The case page's live updates, and the small helps of the person's pages (served at
// /static/case.js; the CSP allows no inline script; every page works without it).
//
// The page follows /cases/{id}/events: every event carries the case JSON and the panel's HTML,
// which replaces the panel in place, so a change costs no further request. When the stream is
// refused (429 at the server's cap) or cannot be kept, the page polls /cases/{id}/panel instead.
// A cut stream (a web restart) is reconnected by the browser with Last-Event-ID, and the server
// sends only what is newer. `data-live` on <body> says which path is in use ("stream"/"polling").
// While the case waits, /cases/{id}/wait says where it is in the queue, or that the analysis is
// delayed. After every change the uploader's history (/cases/{id}/history) is fetched again.
// The occlusion map is drawn by the worker after the result: once the result is shown, the page
// fetches itself a few times until the map is there and swaps the photo's figure.
(function () {
  "use strict";
  // Times in the reader's own zone and language (the server writes UTC).
  function localTimes(root) {
    var times = (root || document).querySelectorAll("time.local[datetime]");
    for (var i = 0; i < times.length; i++) {
      var d = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(d.getTime())) {
        times[i].textContent = d.toLocaleString(undefined, {
          year: "numeric", month: "long", day: "numeric", hour: "2-digit", minute: "2-digit"
        });
      }
    }
  }
  localTimes(document);
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.id === "delete-form" || form.classList.contains("delete-form")) {
      if (!window.confirm(form.getAttribute("data-confirm") || "Delete?")) e.preventDefault();
    }
  });
  function showPrint() {
    var button = document.getElementById("print");
    if (button) button.hidden = false;
  }
  showPrint();
  document.addEventListener("click", function (e) {
    if (e.target && e.target.id === "print") window.print();
  });
  // The printed summary carries the technical details (model version, case id) unfolded.
  window.addEventListener("beforeprint", function () {
    var folds = document.querySelectorAll("details.technical");
    for (var i = 0; i < folds.length; i++) folds[i].open = true;
  });

  var panel = document.getElementById("case");
  if (!panel) return;
  var id = panel.getAttribute("data-case-id");
  var shown = panel.getAttribute("data-status");
  var source = null, timer = null, waitTimer = null;
  function terminal(s) { return s === "done" || s === "failed" || s === "refused" || s === "deleted"; }

  function refreshHistory() {
    if (!document.getElementById("history")) return;
    fetch("/cases/" + id + "/history", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        var old = document.getElementById("history");
        if (!html || !old) return;
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.querySelector("#history");
        if (fresh) { old.replaceWith(fresh); localTimes(fresh); }
      })
      .catch(function () {});
  }
  function checkWait() {
    var line = document.getElementById("wait");
    if (!line) return;
    fetch("/cases/" + id + "/wait", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (w) {
        if (!w) return;
        if (!w.text) { line.hidden = true; return; }
        line.textContent = w.text;
        line.classList.toggle("delayed", !!w.delayed);
        line.setAttribute("data-delayed", w.delayed ? "true" : "false");
      })
      .catch(function () {});
  }
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
            refreshHistory();
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
    if (waitTimer) { clearInterval(waitTimer); waitTimer = null; }
    var line = document.getElementById("wait");
    if (line) line.hidden = true;
  }
  function show(html) {
    var holder = document.createElement("div");
    holder.innerHTML = html;
    var fresh = holder.querySelector("#case");
    if (fresh) { panel.replaceWith(fresh); panel = fresh; localTimes(fresh); showPrint(); }
  }
  function apply(status, html) {
    if (status === "deleted") { stop(); window.location.href = "/?deleted"; return; }
    if (status !== shown && html) { show(html); shown = status; refreshHistory(); checkWait(); }
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
  checkWait();
  waitTimer = setInterval(checkWait, 3000);
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
