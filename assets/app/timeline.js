// The conversation on screen: adds messages in id order without duplicates, folds long cards,
// follows the newest while the reader is at the bottom (else counts them on the "new messages"
// button), drops deleted ones (or, after a reconnect, the ones the relay no longer has), and
// outlines the one the address names.
import { buildCard } from "./card.js";
import { el, make } from "./dom.js";
import { noteSender } from "./senders.js";
import { state } from "./state.js";

const COLLAPSED_PX = 320; // a long message shows about this much until "Show more"
const CODE_COLLAPSED_PX = 1400; // ...unless it holds code (a diff): then this much, to read it whole
const COLLAPSE_SLACK_PX = 80; // ...but is not collapsed just to hide a couple of lines
const AT_BOTTOM_PX = 48; // this close to the end counts as "reading the newest"

// Decides, after layout, which of the new cards are long enough to fold. Reads every height
// first and writes afterwards, so a page of 200 messages costs one layout, not 200.
function foldLongCards(items) {
  const limits = items.map((li) => (li.querySelector(".card-body pre") ? CODE_COLLAPSED_PX : COLLAPSED_PX));
  const tall = items.filter((li, i) => li.querySelector(".card-body").scrollHeight > limits[i] + COLLAPSE_SLACK_PX);
  for (const li of tall) {
    const id = Number(li.getAttribute("data-id"));
    const body = li.querySelector(".card-body");
    body.style.setProperty("--fold-px", limits[items.indexOf(li)] + "px");
    const toggle = make("button", "fold-toggle");
    toggle.type = "button";
    toggle.setAttribute("aria-controls", (body.id = "m" + id + "-body"));
    li.querySelector(".card").appendChild(toggle);
    setFolded(li, !state.expandAll && !state.expanded.has(id));
    toggle.addEventListener("click", () => {
      const fold = !li.classList.contains("folded");
      if (fold) state.expanded.delete(id);
      else state.expanded.add(id);
      setFolded(li, fold);
      // Folding a card the reader has scrolled past would throw them far down the page.
      if (fold && li.getBoundingClientRect().top < el.scroller.getBoundingClientRect().top) {
        li.scrollIntoView({ block: "start" });
      }
    });
  }
}

function setFolded(li, folded) {
  li.classList.toggle("folded", folded);
  const toggle = li.querySelector(".fold-toggle");
  toggle.textContent = folded ? "Show more" : "Show less";
  toggle.setAttribute("aria-expanded", folded ? "false" : "true");
}

el.expandAll.addEventListener("click", () => {
  state.expandAll = !state.expandAll;
  el.expandAll.textContent = state.expandAll ? "Collapse all" : "Expand all";
  el.expandAll.setAttribute("aria-pressed", state.expandAll ? "true" : "false");
  el.messages.querySelectorAll(".fold-toggle").forEach((toggle) => {
    const li = toggle.closest(".entry");
    const id = Number(li.getAttribute("data-id"));
    if (!state.expandAll) state.expanded.delete(id);
    setFolded(li, !state.expandAll);
  });
});

function isAtBottom() {
  const s = el.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight <= AT_BOTTOM_PX;
}

function scrollToBottom() {
  el.scroller.scrollTop = el.scroller.scrollHeight;
}

/** Empties the timeline for a newly chosen channel. */
export function clearTimeline() {
  state.lastId = 0;
  state.shown = new Map();
  state.unseen = 0;
  el.jump.hidden = true;
  el.messages.textContent = "";
  el.empty.hidden = true;
  el.notice.hidden = true;
}

/**
 * Adds messages (ascending, possibly overlapping what is shown) to the timeline. `opts.initial`:
 * the channel's first page (nothing is counted as new); `opts.older`: messages from before the
 * newest shown, fetched on request (neither counted nor followed); `opts.forceBottom`: scroll to
 * the end.
 */
export function addMessages(list, opts) {
  const older = Boolean(opts && opts.older);
  const follow = (opts && opts.forceBottom) || (!older && isAtBottom());
  const fresh = [];
  const frag = document.createDocumentFragment();
  for (const msg of list) {
    if (!msg || typeof msg.id !== "number" || state.shown.has(msg.id)) continue;
    if (msg.target !== state.channel) continue;
    state.shown.set(msg.id, msg);
    if (msg.id > state.lastId) state.lastId = msg.id;
    noteSender(msg.sender);
    const li = buildCard(msg);
    fresh.push(li);
    frag.appendChild(li);
  }
  if (!fresh.length) return;
  // Events arrive in id order; should one ever be older than what is shown, put it in place.
  const firstId = Number(fresh[0].getAttribute("data-id"));
  const lastId = Number(fresh[fresh.length - 1].getAttribute("data-id"));
  const first = el.messages.firstElementChild;
  const last = el.messages.lastElementChild;
  if (first && Number(first.getAttribute("data-id")) > lastId) {
    el.messages.insertBefore(frag, first); // a page of older history
  } else if (last && Number(last.getAttribute("data-id")) > firstId) {
    fresh.forEach(insertInOrder);
  } else {
    el.messages.appendChild(frag);
  }
  foldLongCards(fresh);
  el.empty.hidden = true;
  if (follow) {
    scrollToBottom();
  } else if (!(opts && opts.initial) && !older) {
    state.unseen += fresh.length;
    el.jump.textContent = state.unseen === 1 ? "1 new message ↓" : state.unseen + " new messages ↓";
    el.jump.hidden = false;
  }
}

/** Whether `a` and `b` are the same message (a relay whose history started again reuses ids). */
export function sameMessage(a, b) {
  return a.target === b.target && a.sender === b.sender && a.text === b.text && a.ts === b.ts;
}

/** Drops what a `deleted` event names from the timeline. */
export function removeDeleted(deletion) {
  if (!deletion) return;
  let gone = [];
  if (typeof deletion.id === "number") {
    gone = [deletion.id];
  } else if (deletion.target === state.channel && typeof deletion.through === "number") {
    state.shown.forEach((msg, id) => {
      if (id <= deletion.through) gone.push(id);
    });
  }
  removeCards(gone);
}

/**
 * Takes the cards of `ids` off the screen and forgets them, so that the same ids may be drawn
 * again (for messages the relay holds under them now).
 */
export function forgetMessages(ids) {
  removeCards(ids);
  for (const id of ids) state.shown.delete(id);
}

function removeCards(ids) {
  for (const id of ids) {
    const li = cardOf(id);
    if (li) li.remove();
  }
  if (ids.length && !el.messages.firstElementChild) {
    el.empty.textContent = "No messages on " + state.channel + ".";
    el.empty.hidden = false;
  }
}

/** The card of message `id` in the timeline, or null. */
export function cardOf(id) {
  const li = document.getElementById("m" + id);
  return li && li.parentNode === el.messages ? li : null;
}

/** Scrolls message `id` into view and outlines it (the message the address names), if shown. */
export function outline(id) {
  const card = cardOf(id);
  if (!card) return false;
  el.messages.querySelectorAll(".entry.spotlit").forEach((li) => li.classList.remove("spotlit"));
  card.classList.add("spotlit");
  card.scrollIntoView({ block: "center" });
  return true;
}

function insertInOrder(li) {
  const id = Number(li.getAttribute("data-id"));
  let node = el.messages.lastElementChild;
  while (node && Number(node.getAttribute("data-id")) > id) node = node.previousElementSibling;
  el.messages.insertBefore(li, node ? node.nextSibling : el.messages.firstChild);
}

el.scroller.addEventListener("scroll", () => {
  if (!el.jump.hidden && isAtBottom()) {
    state.unseen = 0;
    el.jump.hidden = true;
  }
}, { passive: true });

el.jump.addEventListener("click", () => {
  scrollToBottom();
  state.unseen = 0;
  el.jump.hidden = true;
});
