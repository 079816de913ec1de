// Switching channels: which channel the address names, and showing one (its latest page over
// REST, then its live stream).
import { setChannels } from "./channels.js";
import { el } from "./dom.js";
import { setLive } from "./live.js";
import { showListening } from "./presence.js";
import { state } from "./state.js";
import { closeStream, openStream, PAGE_LIMIT, scheduleReconnect } from "./stream.js";
import { addMessages, clearTimeline } from "./timeline.js";
import { call } from "./token.js";

/** The channel named by the address's `#hash`; `#m<id>` names a message, not a channel. */
export function channelFromHash() {
  try {
    const h = decodeURIComponent(location.hash.replace(/^#/, ""));
    return /^m\d+$/.test(h) ? null : h || null;
  } catch (e) {
    return null;
  }
}

export function pickInitialChannel() {
  const wanted = channelFromHash();
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
  showListening();
  clearTimeline();
  if (!state.channels.includes(name)) setChannels(state.channels.concat([name]));
  el.channel.value = name;
  el.target.value = name;
  document.title = name + " · Relay";
  if (channelFromHash() !== name) history.replaceState(null, "", "#" + encodeURIComponent(name));
  setLive("connecting", "Connecting");

  const url = "/api/messages?target=" + encodeURIComponent(name) + "&limit=" + PAGE_LIMIT;
  let data;
  try {
    data = await call("GET", url);
  } catch (err) {
    if (gen !== state.generation) return;
    if (err.status === 401) return; // the token dialog is up; the page starts again after it
    setLive("offline", "Offline");
    el.empty.textContent = "Could not load " + name + ": " + err.message;
    el.empty.hidden = false;
    scheduleReconnect(gen);
    return;
  }
  if (gen !== state.generation) return;
  const list = (data && data.messages) || [];
  addMessages(list, { initial: true, forceBottom: true });
  if (list.length >= PAGE_LIMIT) {
    el.notice.textContent = "Showing the latest " + PAGE_LIMIT + " messages of " + name + ".";
    el.notice.hidden = false;
  }
  if (!list.length) {
    el.empty.textContent = "No messages on " + name + " yet. Anything posted here appears at once.";
    el.empty.hidden = false;
  }
  openStream();
}

el.channel.addEventListener("change", () => {
  showChannel(el.channel.value);
});
window.addEventListener("hashchange", () => {
  const wanted = channelFromHash();
  if (wanted && wanted !== state.channel) showChannel(wanted);
});
