// Switching channels and following the address. `#NAME` names the channel on screen and
// `#NAME/mID` one message of it (reply links and search hits are such addresses), so a reload
// or a shared link opens the same place; the name is percent-encoded, so a "/" in it never
// reads as the message part, and any name, "m42" included, is a channel. Showing a channel is
// its latest page, then its live stream; showing a message scrolls to its card and outlines
// it, fetching it first when it is not on screen, or says on the status line that it is gone.
import { setStatus } from "./composer.js";
import { el } from "./dom.js";
import { setLive } from "./live.js";
import { showListening } from "./presence.js";
import { stopReply } from "./replies.js";
import { state } from "./state.js";
import { closeStream, connect } from "./stream.js";
import { addMessages, clearTimeline, outline } from "./timeline.js";
import { call } from "./token.js";

/** `{channel, message}` named by the address's `#hash`; either may be null. */
function readAddress() {
  const raw = location.hash.replace(/^#/, "");
  const m = /^(.*)\/m(\d+)$/.exec(raw);
  let channel = null;
  try {
    channel = decodeURIComponent(m ? m[1] : raw) || null;
  } catch (e) {
    channel = null;
  }
  return { channel, message: m ? Number(m[2]) : null };
}

/** The address of message `id` of `channel` (card.js writes the same for reply links). */
export function messageAddress(channel, id) {
  return "#" + encodeURIComponent(channel) + "/m" + id;
}

function pickInitialChannel() {
  const wanted = readAddress().channel;
  if (wanted) return wanted;
  if (state.channels.includes("proj-x")) return "proj-x";
  return state.channels[0] || "proj-x";
}

/** Shows channel `name`; resolves once its latest page is on screen (or failed to load). */
export async function showChannel(name) {
  state.generation++;
  const gen = state.generation;
  closeStream();
  state.channel = name;
  state.accepted = false;
  state.retryDelay = 1000;
  // A reply answers a message of the channel it was started on.
  stopReply();
  showListening();
  clearTimeline();
  // A name the pickers do not list yet is added once the relay accepts it (stream.js).
  el.channel.value = name;
  el.target.value = name;
  document.title = name + " · Relay";
  if (readAddress().channel !== name) history.replaceState(null, "", "#" + encodeURIComponent(name));
  setLive("connecting", "Connecting");
  await connect(gen);
}

/** Shows message `id` of the channel on screen; resolves once it is shown or said to be gone. */
export async function showMessage(id) {
  if (outline(id)) return;
  const gen = state.generation;
  const channel = state.channel;
  const url = "/api/messages?target=" + encodeURIComponent(channel) + "&since_id=" + (id - 1) + "&limit=1";
  let data;
  try {
    data = await call("GET", url);
  } catch (err) {
    if (gen === state.generation) setStatus("Could not load #" + id + ": " + err.message, "error");
    return;
  }
  if (gen !== state.generation) return;
  const msg = data && data.messages && data.messages[0];
  if (msg && msg.id === id) addMessages([msg], { older: true });
  if (!outline(id)) {
    setStatus("There is no message #" + id + " on " + channel + " (it may have been deleted).", "error");
  }
}

/** Shows, from scratch, what the address names: its channel (or a default one) and message. */
export async function openAddress() {
  await showChannel(pickInitialChannel());
  const { message } = readAddress();
  if (message !== null && state.accepted) await showMessage(message);
}

/** Shows what the address names now that it changed: its channel, then its message. */
export async function followAddress() {
  const { channel, message } = readAddress();
  if (channel && channel !== state.channel) await showChannel(channel);
  if (message !== null && state.accepted) await showMessage(message);
}

/** Goes to `href` (an address of this page) as a followed link does, even when it is already there. */
export function followLink(href) {
  if (location.hash !== href) history.pushState(null, "", href);
  return followAddress();
}

el.channel.addEventListener("change", () => {
  showChannel(el.channel.value);
});
el.messages.addEventListener("click", (ev) => {
  const link = ev.target.closest && ev.target.closest("a.reply-link");
  if (!link || !el.messages.contains(link)) return;
  ev.preventDefault();
  followLink(link.getAttribute("href"));
});
window.addEventListener("hashchange", () => {
  followAddress();
});
