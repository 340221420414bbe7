// A signed-in page that the browser keeps in its back/forward cache comes back on Back or
// Forward as it was when it was left, without asking the server; Chromium does this even for
// pages sent with `Cache-Control: no-store`, as long as this browser's cookies have not changed.
// The session may have ended meanwhile from another device, by an administrator, or by
// idleness, and the page must not show its account data again. So a page going into that cache
// is hidden first, and a page coming back from it is loaded again: the server decides what it
// shows (the page once more, or the sign-in page with the reason).
(function () {
  "use strict";
  window.addEventListener("pagehide", function (event) {
    if (event.persisted) {
      document.documentElement.style.visibility = "hidden";
    }
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      window.location.reload();
    }
  });
})();
