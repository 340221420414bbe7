// The idle warning: shortly before the server's idle timeout, offer "Stay signed in".
// Without this script the pages work the same; the session simply ends on the server's clock.
(function () {
  "use strict";
  var warning = document.querySelector('[data-testid="idle-warning"]');
  if (!warning) {
    return;
  }
  var form = warning.querySelector("form");
  var countdown = warning.querySelector("[data-idle-countdown]");
  var warningSecs = Number(warning.dataset.idleWarningSecs);
  var deadline = 0;
  var ticker = null;

  function secondsLeft() {
    return Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
  }

  function tick() {
    var left = secondsLeft();
    if (left === 0) {
      // Time is up: reload and let the server decide (another tab may have kept the session
      // alive; otherwise it redirects to /login?reason=idle_timeout).
      window.clearInterval(ticker);
      window.location.reload();
      return;
    }
    warning.hidden = left > warningSecs;
    countdown.textContent = String(left);
  }

  function start(seconds) {
    deadline = Date.now() + seconds * 1000;
    window.clearInterval(ticker);
    ticker = window.setInterval(tick, 250);
    tick();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { Accept: "application/json" },
      credentials: "same-origin"
    })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (body) {
        if (body) {
          start(body.idle_seconds_left);
        } else {
          window.location.reload();
        }
      }, function () {
        window.location.reload();
      });
  });

  start(Number(warning.dataset.idleSecondsLeft));
})();
