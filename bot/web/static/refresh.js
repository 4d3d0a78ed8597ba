// Live pages: an element with data-refresh="N" is fetched again every N seconds and its
// content replaced, unless the user is typing in it or the tab is hidden. Without script
// the page is the same, only not live.
//
// Replacing the content would drop the keyboard focus to the top of the page (a keyboard or
// screen reader user tabbing through the desk would start over every N seconds), so the
// focused link or button is found again in the new content and focused; if it is gone (the
// question was answered meanwhile), the one now in its place is.
(function () {
  "use strict";
  var FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";

  function busy(main) {
    var active = document.activeElement;
    return active && main.contains(active) &&
      /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
  }

  // What identifies a control across refreshes: its id, else what it is and where it leads.
  function identity(element) {
    if (element.id) { return "#" + element.id; }
    return [element.tagName, element.getAttribute("href") || "",
            element.getAttribute("name") || "", element.getAttribute("aria-label") || "",
            element.tagName === "A" || element.tagName === "BUTTON" ?
              element.textContent.trim() : ""].join("\u0000");
  }

  function focusPlace(main) {
    var active = document.activeElement;
    if (!active || active === main || !main.contains(active)) { return null; }
    var all = Array.prototype.slice.call(main.querySelectorAll(FOCUSABLE));
    return { identity: identity(active), index: all.indexOf(active) };
  }

  function restoreFocus(main, place) {
    if (!place) { return; }
    var all = Array.prototype.slice.call(main.querySelectorAll(FOCUSABLE));
    var same = all.filter(function (element) { return identity(element) === place.identity; });
    var target = same[0] || all[Math.min(place.index, all.length - 1)] || main;
    target.focus({ preventScroll: true });
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
        if (next && !busy(main)) {
          var place = focusPlace(main);
          main.innerHTML = next.innerHTML;
          restoreFocus(main, place);
        }
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
