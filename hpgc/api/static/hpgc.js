// hpgc's pages: the little JavaScript they use (no framework, no CDN). Every page works without it, but for
// live job status (server-sent events), the log that follows a running job, search and confirmations.
"use strict";
(function () {
  function each(sel, fn) { Array.prototype.forEach.call(document.querySelectorAll(sel), fn); }

  // search: hide the cards whose text does not contain every word typed
  each("input[data-filter]", function (box) {
    box.addEventListener("input", function () {
      var words = box.value.toLowerCase().split(/\s+/).filter(Boolean), shown = 0;
      each(box.dataset.filter, function (card) {
        var hit = words.every(function (w) { return card.dataset.text.indexOf(w) >= 0; });
        card.hidden = !hit; if (hit) { shown++; }
      });
      var none = document.getElementById("search-none"); if (none) { none.hidden = shown > 0; }
    });
  });

  // confirmations of dismiss and undeploy
  each("form[data-confirm]", function (form) {
    form.addEventListener("submit", function (ev) { if (!window.confirm(form.dataset.confirm)) { ev.preventDefault(); } });
  });

  function show(row, ev) {
    var st = row.querySelector("[data-field=status]");
    if (st) { st.textContent = ev.status; st.className = "status " + ev.status; }
    var pr = row.querySelector("[data-field=progress]");
    if (pr && ev.progress !== null && ev.progress !== undefined) { pr.value = ev.progress; pr.textContent = ev.progress + "%"; }
    var pt = row.querySelector("[data-field=progress-text]");
    if (pt && ev.progress !== null && ev.progress !== undefined) { pt.textContent = ev.progress; }
    var msg = row.querySelector("[data-field=message]");
    if (msg) { msg.textContent = ev.message || ""; }
  }

  var logs = document.querySelector("[data-logs]");
  function refreshLogs() {
    if (!logs) { return; }
    fetch(logs.dataset.logs, {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (doc) {
        if (!doc) { return; }
        each("pre[data-log]", function (pre) {
          var text = doc[pre.dataset.log] || "", atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          if (pre.textContent !== text) { pre.textContent = text; if (atEnd) { pre.scrollTop = pre.scrollHeight; } }
        });
      }).catch(function () {});
  }

  // live status: one event stream per page, from the job service's status changes
  // only while something can still change: a finished job, or a dashboard of finished jobs, opens no stream
  var live = document.querySelector("[data-live]");
  var active = live && (live.dataset.job ? live.dataset.terminal !== "true" :
    Array.prototype.some.call(live.querySelectorAll("[data-job] [data-field=status]"), function (c) {
      return c.textContent === "accepted" || c.textContent === "running"; }));
  if (active && window.EventSource) {
    var source = new EventSource(live.dataset.live, {withCredentials: true}), follow = null;
    if (logs) { follow = window.setInterval(refreshLogs, 5000); }
    source.addEventListener("job", function (msg) {
      var ev = JSON.parse(msg.data);
      var row = live.dataset.job === ev.id ? live : live.querySelector("[data-job='" + ev.id + "']");
      if (row) { show(row, ev); }
      if (logs) { refreshLogs(); }
      var final = ["successful", "failed", "dismissed"].indexOf(ev.status) >= 0;
      if (final && live.dataset.job === ev.id) {
        source.close(); if (follow) { window.clearInterval(follow); }
        live.dataset.terminal = "true";
        window.setTimeout(function () { window.location.reload(); }, 800);  // the results and the final logs
      }
    });
  }
})();
