// Live pages: an element with data-refresh="N" is fetched again every N seconds and its
// content replaced, unless the user is typing in it or the tab is hidden. Without script
// the page is the same, only not live.
(function () {
  "use strict";
  function busy(main) {
    var active = document.activeElement;
    return active && main.contains(active) &&
      /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
  }
  function refresh(main) {
    if (document.hidden || busy(main)) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Refresh": "1" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { return null; }
        return response.text();
      })
      .then(function (html) {
        if (!html) { return; }
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        if (next && !busy(main)) { main.innerHTML = next.innerHTML; }
      })
      .catch(function () { /* offline for a moment: the next round tries again */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var main = document.querySelector("[data-refresh]");
    if (!main) { return; }
    var seconds = Math.max(2, parseInt(main.getAttribute("data-refresh"), 10) || 15);
    window.setInterval(function () { refresh(main); }, seconds * 1000);
  });
}());
