// The theme button: switches light/dark and remembers the choice in the `theme` cookie (which
// theme.js reads before the first paint); until a choice is made the page follows the system.
import { el } from "./dom.js";

function currentTheme() {
  return document.documentElement.getAttribute("data-theme") === "dark" ? "dark" : "light";
}

function applyTheme(theme) {
  document.documentElement.setAttribute("data-theme", theme);
  const other = theme === "dark" ? "light" : "dark";
  el.themeToggle.setAttribute("aria-label", "Switch to " + other + " theme");
  el.themeToggle.title = "Switch to " + other + " theme";
}

function hasThemeCookie() {
  return /(?:^|;\s*)theme=(light|dark)(?:;|$)/.test(document.cookie);
}

el.themeToggle.addEventListener("click", () => {
  const next = currentTheme() === "dark" ? "light" : "dark";
  document.cookie = "theme=" + next + "; Path=/; Max-Age=31536000; SameSite=Lax";
  applyTheme(next);
});
if (window.matchMedia) {
  // Until the reader picks a theme, follow the system as it changes (e.g. at dusk).
  const mq = window.matchMedia("(prefers-color-scheme: dark)");
  const follow = () => {
    if (!hasThemeCookie()) applyTheme(mq.matches ? "dark" : "light");
  };
  if (mq.addEventListener) mq.addEventListener("change", follow);
}
applyTheme(currentTheme());
