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
