// The idle warning: shortly before the server's idle timeout, offer "Stay signed in".
// Without this script the pages work the same; the session simply ends on the server's clock.
//
// For keyboard and screen reader users: when the warning appears, the focus moves to its button
// (the dialog is announced once, by its name and text), and after "Stay signed in" it returns to
// where it was. The countdown on screen is not a live region: only one more announcement is
// made, near the end. While the warning shows, the page keeps room below its content so the
// warning never covers a focused element.
(function () {
  "use strict";
  var warning = document.querySelector('[data-testid="idle-warning"]');
  if (!warning) {
    return;
  }
  var form = warning.querySelector("form");
  var button = form.querySelector("button");
  var countdown = warning.querySelector("[data-idle-countdown]");
  var announcement = warning.querySelector("[data-idle-announcement]");
  var warningSecs = Number(warning.dataset.idleWarningSecs);
  // The second announcement: a fifth of the warning before the end, at least 5 seconds.
  var finalCallSecs = Math.max(5, Math.round(warningSecs / 5));
  var deadline = 0;
  var ticker = null;
  var returnFocusTo = null;
  var finalCallMade = false;

  function secondsLeft() {
    return Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
  }

  // "1 minute 5 seconds", "45 seconds".
  function inWords(seconds) {
    var minutes = Math.floor(seconds / 60);
    var rest = seconds % 60;
    var parts = [];
    if (minutes > 0) {
      parts.push(minutes + (minutes === 1 ? " minute" : " minutes"));
    }
    if (rest > 0 || minutes === 0) {
      parts.push(rest + (rest === 1 ? " second" : " seconds"));
    }
    return parts.join(" ");
  }

  function show() {
    returnFocusTo = document.activeElement;
    warning.hidden = false;
    // Room for the warning below the page, and focus never scrolled under it.
    var room = warning.offsetHeight + 32 + "px";
    document.body.style.paddingBottom = room;
    document.documentElement.style.scrollPaddingBottom = room;
    button.focus();
  }

  function hide() {
    warning.hidden = true;
    document.body.style.paddingBottom = "";
    document.documentElement.style.scrollPaddingBottom = "";
    announcement.textContent = "";
    finalCallMade = false;
    if (returnFocusTo && returnFocusTo !== document.body && document.contains(returnFocusTo)) {
      returnFocusTo.focus();
    }
    returnFocusTo = null;
  }

  function tick() {
    var left = secondsLeft();
    if (left === 0) {
      window.clearInterval(ticker);
      check();
      return;
    }
    if (left > warningSecs) {
      if (!warning.hidden) {
        hide();
      }
      return;
    }
    var words = inWords(left);
    if (countdown.textContent !== words) {
      countdown.textContent = words;
    }
    if (warning.hidden) {
      show();
    } else if (!finalCallMade && left <= finalCallSecs) {
      finalCallMade = true;
      announcement.textContent = "You will be signed out in " + words + ".";
    }
  }

  // Time is up on this page's clock: ask the server, with a request that is the page's own and
  // so never counts as activity (a reload would, and open tabs would keep each other alive).
  // Another tab may have been used meanwhile: count down again. Or the session has ended: go
  // where the server says, the sign-in page saying why.
  function check() {
    var next = window.location.pathname + window.location.search;
    fetch("/session/idle?next=" + encodeURIComponent(next), {
      headers: { Accept: "application/json" },
      credentials: "same-origin"
    })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (body) {
        if (body && body.location) {
          window.location.assign(body.location);
        } else if (body && body.idle_seconds_left > 0) {
          start(body.idle_seconds_left);
        } else {
          checkAgainSoon();
        }
      }, checkAgainSoon);
  }

  function checkAgainSoon() {
    window.setTimeout(check, 2000);
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
