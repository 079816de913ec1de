// The history before the latest page: a channel longer than one page opens at its latest page,
// and "Load older messages" adds the page before it (GET /api/messages with before_id), keeping
// the reader's place, until the channel's first message is on screen. Each page asks for one
// message more than it shows, so the control is offered only when older messages exist. On a
// reconnect, the older pages shown are checked against the relay as the latest page is.
import { el } from "./dom.js";
import { state } from "./state.js";
import { addMessages, cardOf, forgetMessages, sameMessage } from "./timeline.js";
import { call } from "./token.js";

export const PAGE_LIMIT = 200;
const CHECK_LIMIT = 500; // the relay's largest page, for checking what is shown

/**
 * A page asked for with `PAGE_LIMIT + 1`: the messages to show (at most `PAGE_LIMIT`, the
 * newest) and whether older ones exist.
 */
export function pageOf(data) {
  const list = messagesOf(data);
  const older = list.length > PAGE_LIMIT;
  return { list: older ? list.slice(list.length - PAGE_LIMIT) : list, older };
}

/** The messages of a page the relay answered, each with a numeric id. */
function messagesOf(data) {
  return ((data && data.messages) || []).filter((m) => m && typeof m.id === "number");
}

/** Offers older messages when `older`; `from` is the first id of the pages shown whole. */
export function offerOlder(older, from) {
  state.pagedFrom = from;
  if (!older) {
    el.notice.hidden = true;
    return;
  }
  const shown = el.messages.childElementCount;
  el.noticeText.textContent = "Showing the latest " + shown + " messages of " + state.channel + ".";
  el.older.disabled = false;
  el.notice.hidden = false;
}

/**
 * Checks the cards shown from `state.pagedFrom` up to id `upTo` against the relay: those it no
 * longer holds go, any it holds that are missing come. Resolves to false when an id there names
 * another message now (the history was reset); the caller checks `gen` afterwards.
 */
export async function checkOlder(gen, upTo) {
  const held = [];
  let cursor = state.pagedFrom - 1;
  for (;;) {
    const url = "/api/messages?target=" + encodeURIComponent(state.channel) + "&since_id=" + cursor +
      "&before_id=" + upTo + "&newest=0&limit=" + CHECK_LIMIT;
    const data = await call("GET", url);
    if (gen !== state.generation) return true;
    const list = messagesOf(data);
    if (list.some((m) => state.shown.has(m.id) && !sameMessage(state.shown.get(m.id), m))) return false;
    held.push(...list);
    if (list.length < CHECK_LIMIT) break;
    cursor = list[list.length - 1].id;
  }
  const present = new Set(held.map((m) => m.id));
  const gone = [];
  state.shown.forEach((msg, id) => {
    if (id >= state.pagedFrom && id < upTo && !present.has(id)) gone.push(id);
  });
  forgetMessages(gone);
  addMessages(held, { older: true });
  return true;
}

el.older.addEventListener("click", async () => {
  const gen = state.generation;
  const from = state.pagedFrom;
  el.older.disabled = true;
  let page;
  try {
    const url = "/api/messages?target=" + encodeURIComponent(state.channel) + "&before_id=" + from +
      "&limit=" + (PAGE_LIMIT + 1);
    page = pageOf(await call("GET", url));
  } catch (err) {
    if (gen !== state.generation) return;
    el.noticeText.textContent = "Could not load older messages: " + err.message;
    el.older.disabled = false;
    return;
  }
  // A reconnect that redrew the page meanwhile starts the pages afresh: this one may not join.
  if (gen !== state.generation || from !== state.pagedFrom) return;
  // The first card of the pages stays where it was on screen, however much lands above it and
  // whether or not the notice above it goes.
  const anchor = cardOf(from) || el.messages.firstElementChild;
  const before = anchor ? anchor.getBoundingClientRect().top : 0;
  addMessages(page.list, { older: true });
  offerOlder(page.older, page.list.length ? page.list[0].id : state.pagedFrom);
  if (anchor) el.scroller.scrollTop += anchor.getBoundingClientRect().top - before;
});
