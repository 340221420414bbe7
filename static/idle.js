// The idle warning (the GOV.UK timeout-warning pattern): shortly before the server's idle
// timeout, a modal dialog offers "Stay signed in" or "Sign out". Without this script the pages
// work the same; the session simply ends on the server's clock.
//
// For keyboard and screen reader users: the dialog is a native <dialog> opened with showModal(),
// so the page behind it is inert; the focus moves to "Stay signed in", Tab and Shift+Tab go round
// its two buttons, Escape counts as "Stay signed in", and on closing the focus returns to where
// it was. The dialog is announced when it opens, by its name and text; the countdown on screen
// is not a live region, and a polite status message repeats the time left only at whole minutes
// and once near the end. "Sign out" is an ordinary form posting to /logout.
(function () {
  "use strict";
  var dialog = document.querySelector('[data-testid="idle-warning"]');
  if (!dialog || typeof dialog.showModal !== "function") {
    return;
  }
  var stayForm = dialog.querySelector('form[action="/session/keepalive"]');
  var buttons = dialog.querySelectorAll("button");
  var first = buttons[0];
  var last = buttons[buttons.length - 1];
  var countdown = dialog.querySelector("[data-idle-countdown]");
  var announcement = dialog.querySelector("[data-idle-announcement]");
  var warningSecs = Number(dialog.dataset.idleWarningSecs);
  // The last announcement: a fifth of the warning before the end, at least 5 seconds.
  var finalCallSecs = Math.max(5, Math.round(warningSecs / 5));
  var deadline = 0;
  var ticker = null;
  var returnFocusTo = null;
  var announced = null;

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

  // Which announcement is due with `left` seconds to go: the latest whole minute passed since
  // the dialog opened, or the final call. The dialog's opening is announced by itself.
  function announcementDue(left) {
    if (left <= finalCallSecs) {
      return "final";
    }
    var minute = Math.ceil(left / 60) * 60;
    return minute < warningSecs ? "minute-" + minute : null;
  }

  function show() {
    returnFocusTo = document.activeElement;
    announced = announcementDue(secondsLeft());
    dialog.showModal();
    first.focus();
  }

  function hide() {
    dialog.close();
    announcement.textContent = "";
    announced = null;
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
      if (dialog.open) {
        hide();
      }
      return;
    }
    var words = inWords(left);
    if (countdown.textContent !== words) {
      countdown.textContent = words;
    }
    if (!dialog.open) {
      show();
      return;
    }
    var due = announcementDue(left);
    if (due !== null && due !== announced) {
      announced = due;
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

  // "Stay signed in": the server moves the deadline and says how long the page now has.
  function stay() {
    fetch(stayForm.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(stayForm)),
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
  }

  stayForm.addEventListener("submit", function (event) {
    event.preventDefault();
    stay();
  });

  // Escape: the dialog would close by itself; it means "Stay signed in", as on GOV.UK.
  dialog.addEventListener("cancel", function (event) {
    event.preventDefault();
    stay();
  });

  // Tab and Shift+Tab go round the dialog's buttons, never out to the browser's own controls.
  dialog.addEventListener("keydown", function (event) {
    if (event.key !== "Tab") {
      return;
    }
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });

  start(Number(dialog.dataset.idleSecondsLeft));
})();
