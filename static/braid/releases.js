// While a release is active its state refreshes every 5 s without reloading the page.
(function () {
  "use strict";
  setInterval(async function () {
    try {
      const response = await fetch(window.location.href, {credentials: "same-origin"});
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("release-state");
      const current = document.getElementById("release-state");
      if (fresh && current) current.replaceWith(fresh);
    } catch (error) { /* offline for a moment: try again next time */ }
  }, 5000);
})();
