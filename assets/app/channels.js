// The channel list: the picker in the top bar and the composer's "To" field, refreshed from
// GET /api/channels (which also says who listens where).
import { el } from "./dom.js";
import { setListening, showListening } from "./presence.js";
import { state } from "./state.js";
import { call } from "./token.js";

// Lists `values` in `select`, plus `keep` (the option to leave chosen) when the relay no longer
// lists it: a channel chosen as the composer's "To" stays chosen after it is deleted (posting
// to it makes it again) rather than the choice moving silently to another channel. The options
// are only rebuilt when the list changed, so a picker with thousands of channels costs nothing
// each time the reader opens it.
function fillSelect(select, values, keep) {
  const wanted = keep && !values.includes(keep) ? values.concat([keep]).sort() : values;
  const options = select.options;
  let same = options.length === wanted.length;
  for (let i = 0; same && i < wanted.length; i++) same = options[i].value === wanted[i];
  if (!same) {
    select.textContent = "";
    for (const v of wanted) {
      const opt = document.createElement("option");
      opt.value = v;
      opt.textContent = v;
      select.appendChild(opt);
    }
  }
  if (keep) select.value = keep;
}

/** Shows `channels` (plus the current channel once the relay accepted it, even before anything
 *  is posted to it). */
export function setChannels(channels) {
  const list = channels.slice();
  const current = state.accepted ? state.channel : null;
  if (current && !list.includes(current)) list.push(current);
  list.sort();
  state.channels = list;
  fillSelect(el.channel, list, current);
  fillSelect(el.target, list, el.target.value || current);
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
