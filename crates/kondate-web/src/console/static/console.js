// kondate's console: progressive touches only — every page works without this file.
// Times: each <time datetime="…UTC…"> is shown in the viewer's time zone; its title keeps
// the UTC time (shown on hover).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
  });
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var t = new Date(el.getAttribute("datetime"));
    if (isNaN(t.getTime())) { return; }
    el.title = t.toISOString().replace(".000Z", "Z") + " (UTC)";
    el.textContent = fmt.format(t);
  });
});

// A running instance's log follows live (server-sent events); the page reloads when the
// instance stops running, to show how it ended.
document.addEventListener("DOMContentLoaded", function () {
  var log = document.getElementById("log");
  if (!log || !log.dataset.follow || !window.EventSource) { return; }
  var source = new EventSource(log.dataset.follow);
  var first = true;
  source.addEventListener("line", function (e) {
    // The stream starts from the log's beginning: it replaces what the page was served with.
    if (first) { log.textContent = ""; first = false; }
    var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent += e.data + "\n";
    if (atEnd) { log.scrollTop = log.scrollHeight; }
  });
  source.addEventListener("end", function (e) {
    source.close();
    if (e.data === "done") { window.location.reload(); }
  });
});

// A page with running instances (the home page) refreshes itself every data-refresh
// seconds — unless the viewer is typing in a field.
document.addEventListener("DOMContentLoaded", function () {
  var every = parseInt(document.body.dataset.refresh || "", 10);
  if (!every) { return; }
  setInterval(function () {
    var a = document.activeElement;
    if (a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT")) { return; }
    window.location.reload();
  }, every * 1000);
});
