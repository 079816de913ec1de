// Who is listening: the agents waiting on each channel, shown beside the channel's name in the
// picker and above the timeline for the channel on screen.
import { el } from "./dom.js";
import { state } from "./state.js";

// The agents that said who they are and are waiting on `channel` now (this page and other
// anonymous readers are left out).
function listeningNames(channel) {
  const names = [];
  for (const l of state.listening[channel] || []) {
    if (l.name && !names.includes(l.name)) names.push(l.name);
  }
  return names;
}

/** Records the relay's per-channel `detail` list. */
export function setListening(detail) {
  state.listening = {};
  for (const c of detail) state.listening[c.name] = c.listeners || [];
}

export function showListening() {
  for (const opt of el.channel.options) {
    const names = listeningNames(opt.value);
    const text = names.length ? opt.value + " · " + names.join(", ") + " listening" : opt.value;
    // Written only when it changes: the picker may list thousands of channels.
    if (opt.textContent !== text) opt.textContent = text;
  }
  const here = listeningNames(state.channel);
  el.listening.textContent = here.length
    ? here.join(", ") + (here.length > 1 ? " are" : " is") + " listening"
    : "";
  el.listening.title = here.length ? "Waiting for messages on " + state.channel + " now" : "";
  el.listening.hidden = here.length === 0;
}
