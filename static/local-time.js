// Times in the reader's own time zone: every <time datetime="...Z"> the server wrote in UTC
// ("22 Nov 2026, 14:05 UTC") is rewritten in the zone the browser reports, with its name
// ("22 Nov 2026, 15:05 CET"). Without this script the UTC times stay, labelled as such.
(function () {
  "use strict";
  var format;
  try {
    format = new Intl.DateTimeFormat("en-GB", {
      day: "numeric", month: "short", year: "numeric",
      hour: "2-digit", minute: "2-digit", timeZoneName: "short"
    });
  } catch (error) {
    return;
  }
  function localise() {
    var times = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i += 1) {
      var at = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(at.getTime())) {
        times[i].textContent = format.format(at);
      }
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", localise);
  } else {
    localise();
  }
})();
