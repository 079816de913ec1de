// Search: the top bar's query runs GET /api/search over every channel; each hit links to its
// message's address, which shows the message (switching channel first when it lives elsewhere,
// and fetching it when it is older than what is on screen).
import { followLink, messageAddress } from "./conversation.js";
import { el, make } from "./dom.js";
import { call } from "./token.js";

const LIMIT = 50;

function hitItem(msg) {
  const li = make("li", "search-hit");
  const link = make("a", "search-link");
  link.href = messageAddress(msg.target, msg.id);
  link.appendChild(make("span", "msg-id", "#" + msg.id));
  link.appendChild(make("span", "search-channel", msg.target));
  link.appendChild(make("strong", "from", msg.sender));
  const line = String(msg.text).split("\n").map((l) => l.trim()).filter(Boolean)[0] || "";
  link.appendChild(make("span", "search-line", line));
  link.addEventListener("click", (ev) => {
    ev.preventDefault();
    el.searchResults.hidden = true;
    followLink(link.getAttribute("href"));
  });
  li.appendChild(link);
  return li;
}

async function showSearch(query) {
  const url = "/api/search?q=" + encodeURIComponent(query) + "&limit=" + LIMIT;
  el.searchSummary.textContent = "Searching…";
  el.searchList.textContent = "";
  el.searchResults.hidden = false;
  let data;
  try {
    data = await call("GET", url);
  } catch (err) {
    el.searchSummary.textContent = "Search failed: " + err.message;
    return;
  }
  const hits = (data && data.messages) || [];
  el.searchSummary.textContent = hits.length
    ? hits.length + (hits.length === LIMIT ? "+" : "") + " messages contain “" + query + "”, newest first"
    : "No message contains “" + query + "”.";
  for (const msg of hits) el.searchList.appendChild(hitItem(msg));
}

el.searchForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const query = el.searchInput.value.trim();
  if (query) showSearch(query);
});
el.searchClose.addEventListener("click", () => {
  el.searchResults.hidden = true;
});
