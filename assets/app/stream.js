// The live feed of the channel on screen: the /api/stream event stream from the last id shown,
// and, when it closes for good, a REST catch-up and a new stream after a growing delay.
import { setLive } from "./live.js";
import { state } from "./state.js";
import { addMessages, removeDeleted } from "./timeline.js";
import { call } from "./token.js";

export const PAGE_LIMIT = 200;

export function closeStream() {
  if (state.stream) {
    state.stream.close();
    state.stream = null;
  }
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
}

function streamUrl() {
  let q = "target=" + encodeURIComponent(state.channel) + "&since_id=" + state.lastId;
  if (state.token) q += "&token=" + encodeURIComponent(state.token);
  return "/api/stream?" + q;
}

export function openStream() {
  closeStream();
  const gen = state.generation;
  const es = new EventSource(streamUrl());
  state.stream = es;
  es.addEventListener("open", () => {
    if (gen !== state.generation) return;
    state.retryDelay = 1000;
    setLive("live", "Live");
  });
  es.addEventListener("message", (ev) => {
    if (gen !== state.generation) return;
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    addMessages([msg]);
  });
  es.addEventListener("deleted", (ev) => {
    if (gen !== state.generation) return;
    try {
      removeDeleted(JSON.parse(ev.data));
    } catch (e) {
      /* not ours to show */
    }
  });
  es.addEventListener("error", () => {
    if (gen !== state.generation) return;
    if (es.readyState === EventSource.CONNECTING) {
      // The browser reconnects by itself and sends Last-Event-ID: nothing is missed.
      setLive("reconnecting", "Reconnecting");
      return;
    }
    // Closed for good (an HTTP error, or the relay went away while connecting): find out
    // whether a token is needed, otherwise try again later from the last id shown.
    es.close();
    state.stream = null;
    setLive("reconnecting", "Reconnecting");
    scheduleReconnect(gen);
  });
}

/** Catches up and reopens the stream later, unless the channel changed (`gen`) meanwhile. */
export function scheduleReconnect(gen) {
  clearTimeout(state.retryTimer);
  const delay = state.retryDelay;
  state.retryDelay = Math.min(state.retryDelay * 2, 15000);
  state.retryTimer = setTimeout(() => {
    if (gen !== state.generation) return;
    // Catch up over REST first: it also tells a 401 apart from a relay that is down.
    catchUp(gen).then(() => {
      if (gen === state.generation) openStream();
    }, (err) => {
      if (gen !== state.generation) return;
      // On 401 the token dialog is up, and submitting it starts everything afresh.
      if (err && err.status === 401) return;
      scheduleReconnect(gen);
    });
  }, delay);
}

// Fetches everything after the last id shown, a page at a time.
async function catchUp(gen) {
  const url = "/api/messages?target=" + encodeURIComponent(state.channel) +
    "&since_id=" + state.lastId + "&limit=" + PAGE_LIMIT;
  const data = await call("GET", url);
  if (gen !== state.generation) return;
  const list = (data && data.messages) || [];
  addMessages(list);
  if (list.length >= PAGE_LIMIT) return catchUp(gen);
}
