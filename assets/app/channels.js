// The channel list: the picker in the top bar and the composer's "To" field, refreshed from
// GET /api/channels (which also says who listens where).
import { el } from "./dom.js";
import { setListening, showListening } from "./presence.js";
import { state } from "./state.js";
import { call } from "./token.js";

function fillSelect(select, values, selected) {
  const keep = selected !== undefined ? selected : select.value;
  select.textContent = "";
  for (const v of values) {
    const opt = document.createElement("option");
    opt.value = v;
    opt.textContent = v;
    select.appendChild(opt);
  }
  if (keep && values.includes(keep)) select.value = keep;
}

/** Shows `channels` (plus the current channel, even before anything is posted to it). */
export function setChannels(channels) {
  const list = channels.slice();
  if (state.channel && !list.includes(state.channel)) list.push(state.channel);
  list.sort();
  state.channels = list;
  fillSelect(el.channel, list, state.channel || undefined);
  fillSelect(el.target, list, el.target.value || state.channel || undefined);
}

export async function refreshChannels() {
  const data = await call("GET", "/api/channels?detail=1");
  setListening((data && data.detail) || []);
  setChannels((data && data.channels) || []);
  showListening();
}

const refreshQuietly = () => refreshChannels().catch(() => {});

// Who is listening changes without any message; look again now and then.
setInterval(refreshQuietly, 15000);
// The list of channels grows as agents post to new targets; refresh it when the reader is
// about to choose, instead of polling.
for (const type of ["focus", "mousedown"]) {
  el.channel.addEventListener(type, refreshQuietly);
  el.target.addEventListener(type, refreshQuietly);
}
