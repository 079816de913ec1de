// The reader's credentials: the bearer token kept in this browser, the dialog that asks for it,
// and `call`, the API request made with it. A 401 from any call opens the dialog; entering a
// token runs the callback given to `onTokenEntered` (the page starts afresh).
import { request } from "./api.js";
import { el } from "./dom.js";
import { setLive } from "./live.js";
import { state } from "./state.js";
import { TOKEN_KEY, writeStorage } from "./storage.js";

/** `request` with the current token; a 401 asks the reader for a (better) token. */
export async function call(method, path, body) {
  try {
    return await request(method, path, body, state.token);
  } catch (err) {
    if (err.status === 401) askForToken(state.token ? "That token was not accepted." : "");
    throw err;
  }
}

function askForToken(error) {
  if (error) {
    el.tokenError.textContent = error;
    el.tokenError.hidden = false;
  } else {
    el.tokenError.hidden = true;
  }
  if (!el.tokenDialog.hidden) return;
  setLive("offline", "Token needed");
  el.tokenDialog.hidden = false;
  el.tokenInput.value = "";
  el.tokenInput.focus();
}

/** Runs `entered` each time the reader submits a token. */
export function onTokenEntered(entered) {
  el.tokenForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = el.tokenInput.value.trim();
    if (!t) return;
    state.token = t;
    writeStorage(TOKEN_KEY, t);
    el.tokenDialog.hidden = true;
    entered();
  });
}
