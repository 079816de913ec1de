// Runs before the page is drawn (a plain <script> in <head>), so the first paint already has
// the right colours: the reader's choice from the `theme` cookie, else the system preference.
(function () {
  "use strict";
  var m = document.cookie.match(/(?:^|;\s*)theme=(light|dark)(?:;|$)/);
  var theme = m ? m[1]
    : (window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  document.documentElement.setAttribute("data-theme", theme);
})();
