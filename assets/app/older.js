// The history before the first page shown: a channel longer than one page opens at its latest
// page, and "Load older messages" adds the page before it (GET /api/messages with before_id),
// keeping the reader's place, until the channel's first message is on screen.
import { el } from "./dom.js";
import { state } from "./state.js";
import { addMessages } from "./timeline.js";
import { call } from "./token.js";

export const PAGE_LIMIT = 200;

/**
 * Offers older messages when the pages shown may not reach the channel's start: `full` when
 * the last page loaded held all it could. `from` is the first id of those pages.
 */
export function offerOlder(full, from) {
  state.pagedFrom = from;
  if (!full) {
    el.notice.hidden = true;
    return;
  }
  const shown = el.messages.childElementCount;
  el.noticeText.textContent = "Showing the latest " + shown + " messages of " + state.channel + ".";
  el.older.disabled = false;
  el.notice.hidden = false;
}

el.older.addEventListener("click", async () => {
  const gen = state.generation;
  el.older.disabled = true;
  let list;
  try {
    const url = "/api/messages?target=" + encodeURIComponent(state.channel) + "&before_id=" + state.pagedFrom +
      "&limit=" + PAGE_LIMIT;
    const data = await call("GET", url);
    list = ((data && data.messages) || []).filter((m) => m && typeof m.id === "number");
  } catch (err) {
    if (gen !== state.generation) return;
    el.noticeText.textContent = "Could not load older messages: " + err.message;
    el.older.disabled = false;
    return;
  }
  if (gen !== state.generation) return;
  // The card that was first stays where it was on screen, however much lands above it.
  const anchor = el.messages.firstElementChild;
  const before = anchor ? anchor.getBoundingClientRect().top : 0;
  addMessages(list, { older: true });
  if (anchor) el.scroller.scrollTop += anchor.getBoundingClientRect().top - before;
  offerOlder(list.length >= PAGE_LIMIT, list.length ? list[0].id : state.pagedFrom);
});
