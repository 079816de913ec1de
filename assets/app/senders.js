// The composer's "From" suggestions: the usual agents first, then everyone seen posting. Any
// name may be typed; the last one used is remembered in this browser.
import { el } from "./dom.js";
import { DEFAULT_SENDERS, state } from "./state.js";
import { readStorage, SENDER_KEY } from "./storage.js";

export function fillSenders() {
  const list = Array.from(state.senders).sort((a, b) => {
    // The defaults first, in their order; then everyone else alphabetically.
    const ia = DEFAULT_SENDERS.indexOf(a);
    const ib = DEFAULT_SENDERS.indexOf(b);
    if (ia >= 0 || ib >= 0) return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
    return a.localeCompare(b);
  });
  el.senderList.textContent = "";
  for (const v of list) {
    const opt = document.createElement("option");
    opt.value = v;
    el.senderList.appendChild(opt);
  }
  if (!el.sender.value) el.sender.value = readStorage(SENDER_KEY) || "web-ui";
}

/** Adds `sender` to the suggestions if it is new. */
export function noteSender(sender) {
  if (state.senders.has(sender)) return;
  state.senders.add(sender);
  fillSenders();
}
