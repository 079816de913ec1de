// The live feed of the channel on screen: connecting (the channel's latest page over REST, then
// the /api/stream event stream from its newest id), and, whenever the stream fails, connecting
// again after a growing delay. A refusal (4xx) is the relay's answer, shown and not retried.
//
// Every connection reads the latest page, a reconnection too, rather than only what follows
// the last id seen: deletions, retention and a relay whose history started again (a memory
// store after a restart hands out ids from 1 again) all happen unseen while the page is away,
// and no resumed stream reports them. The latest page is the relay's word on every id it
// covers, so cards it no longer holds go; an id it holds as another message means the history
// was reset, and the timeline is drawn afresh, as it is when more arrived than one page holds.
import { setChannels } from "./channels.js";
import { el } from "./dom.js";
import { setLive } from "./live.js";
import { checkOlder, offerOlder, pageOf, PAGE_LIMIT } from "./older.js";
import { state } from "./state.js";
import { addMessages, clearTimeline, forgetMessages, removeDeleted, sameMessage } from "./timeline.js";
import { call } from "./token.js";

/**
 * Loads the latest page of the channel on screen and shows it: drawn afresh when nothing is
 * shown yet (or what is shown no longer fits the relay's history), otherwise merged with what
 * is shown. Afterwards `state.lastId` is the channel's newest id, where the stream goes on.
 * Resolves to false when the channel changed (`gen`) meanwhile; rejects with the ApiError.
 */
async function loadLatest(gen) {
  const url = "/api/messages?target=" + encodeURIComponent(state.channel) + "&limit=" + (PAGE_LIMIT + 1);
  const data = await call("GET", url);
  if (gen !== state.generation) return false;
  if (!state.accepted) {
    state.accepted = true;
    if (!state.channels.includes(state.channel)) setChannels(state.channels);
  }
  // `older`: the page does not reach the channel's first message.
  const { list, older } = pageOf(data);
  const newest = list.length ? list[list.length - 1].id : 0;
  const head = typeof (data && data.head_id) === "number" ? Math.max(data.head_id, newest) : newest;
  const reset = list.some((m) => state.shown.has(m.id) && !sameMessage(state.shown.get(m.id), m));
  // A page with older messages before it that starts after the newest id shown may leave
  // messages out between the two.
  const gap = older && state.lastId > 0 && list[0].id > state.lastId + 1;
  if (state.shown.size === 0 || reset || gap) {
    drawPage(list, older);
  } else {
    // Every id from the page's first (from 0 when the page holds the whole channel) is the
    // relay's: a card in that range that the page lacks was deleted or dropped meanwhile.
    // The cards below it (older pages, and what was the latest page) are checked too.
    const from = older ? list[0].id : 0;
    const present = new Set(list.map((m) => m.id));
    const gone = [];
    state.shown.forEach((msg, id) => {
      if (id >= from && !present.has(id)) gone.push(id);
    });
    forgetMessages(gone);
    addMessages(list);
    if (older && state.pagedFrom < from) {
      const same = await checkOlder(gen, from);
      if (gen !== state.generation) return false;
      if (!same) drawPage(list, older);
      else if (!el.notice.hidden) offerOlder(true, state.pagedFrom);
    } else {
      offerOlder(older, older ? list[0].id : 0);
    }
    if (!el.messages.firstElementChild) showEmpty();
  }
  state.lastId = head;
  return true;
}

function drawPage(list, older) {
  clearTimeline();
  addMessages(list, { initial: true, forceBottom: true });
  offerOlder(older, list.length ? list[0].id : 0);
  if (!list.length) showEmpty();
}

function showEmpty() {
  el.empty.textContent = "No messages on " + state.channel + " yet. Anything posted here appears at once.";
  el.empty.hidden = false;
}

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

/**
 * Shows the channel on screen and follows it: loads the latest page, then opens the stream.
 * Resolves once the page is shown or the attempt failed (and another is scheduled, unless the
 * relay refused the channel or wants a token), unless the channel changed (`gen`) meanwhile.
 */
export async function connect(gen) {
  try {
    if (!(await loadLatest(gen))) return;
  } catch (err) {
    if (gen !== state.generation) return;
    // On 401 the token dialog is up, and submitting it starts everything afresh.
    if (err.status === 401) return;
    if (err.status >= 400 && err.status < 500) {
      setLive("offline", "Refused");
      el.empty.textContent = "The relay refused " + state.channel + ": " + err.message;
      el.empty.hidden = false;
      return;
    }
    if (state.shown.size) {
      setLive("reconnecting", "Reconnecting");
    } else {
      setLive("offline", "Offline");
      el.empty.textContent = "Could not load " + state.channel + ": " + err.message;
      el.empty.hidden = false;
    }
    scheduleReconnect(gen);
    return;
  }
  openStream();
}

function openStream() {
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
    // The browser would reconnect by itself with Last-Event-ID, but that only brings what
    // follows the last id; connecting afresh also settles what changed before it.
    es.close();
    if (state.stream === es) state.stream = null;
    setLive("reconnecting", "Reconnecting");
    scheduleReconnect(gen);
  });
}

/** Connects again later, unless the channel changed (`gen`) meanwhile. */
function scheduleReconnect(gen) {
  clearTimeout(state.retryTimer);
  const delay = state.retryDelay;
  state.retryDelay = Math.min(state.retryDelay * 2, 15000);
  state.retryTimer = setTimeout(() => {
    if (gen === state.generation) connect(gen);
  }, delay);
}
