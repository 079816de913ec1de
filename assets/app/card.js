// One message as a timeline entry: avatar, header (from, to, local time, id, the message it
// answers, a Reply button) and the rendered markdown body.
import { make } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { startReply } from "./replies.js";

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", second: "2-digit" });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
});
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });

function formatTime(date) {
  const now = new Date();
  return date.toDateString() === now.toDateString() ? timeFmt.format(date) : dateTimeFmt.format(date);
}

const KNOWN_SENDERS = new Set(["claude", "codex", "web-ui", "user", "gemini"]);

/** The colour class of a sender: its own for the usual agents, one of six by hash otherwise. */
function senderClass(sender) {
  const s = String(sender).toLowerCase();
  if (KNOWN_SENDERS.has(s)) return "sender-" + s;
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return "sender-p" + (h % 6);
}

/** The `<li>` showing `msg`, with id "m<id>". */
export function buildCard(msg) {
  const li = make("li", "entry " + senderClass(msg.sender));
  li.id = "m" + msg.id;
  li.setAttribute("data-id", String(msg.id));

  // Two letters, so claude and codex are told apart at a glance.
  const letters = Array.from(String(msg.sender).trim().replace(/[^\p{L}\p{N}]/gu, ""));
  const avatar = make("span", "avatar",
    letters.length ? letters[0].toUpperCase() + (letters[1] || "").toLowerCase() : "?");
  avatar.setAttribute("aria-hidden", "true");
  li.appendChild(avatar);

  const card = make("article", "card");
  card.setAttribute("aria-labelledby", "m" + msg.id + "-h");
  const head = make("header", "card-head");
  head.id = "m" + msg.id + "-h";
  const from = make("strong", "from", msg.sender);
  from.title = "from " + msg.sender;
  head.appendChild(from);
  const to = make("span", "to");
  to.appendChild(document.createTextNode("to "));
  to.appendChild(make("span", "to-name", msg.target));
  head.appendChild(to);
  const date = new Date(msg.ts * 1000);
  const time = make("time", "when", formatTime(date));
  if (!isNaN(date.getTime())) {
    time.dateTime = date.toISOString();
    time.title = fullFmt.format(date);
  }
  head.appendChild(time);
  const idTag = make("span", "msg-id", "#" + msg.id);
  idTag.title = "message id " + msg.id;
  head.appendChild(idTag);
  if (typeof msg.reply_to === "number") {
    // The answered message's address, `#channel/m<id>`, which conversation.js follows.
    const answered = make("a", "reply-link", "↩ #" + msg.reply_to);
    answered.href = "#" + encodeURIComponent(msg.target) + "/m" + msg.reply_to;
    answered.title = "a reply to message " + msg.reply_to;
    head.appendChild(answered);
  }
  const replyButton = make("button", "reply-button link-button", "Reply");
  replyButton.type = "button";
  replyButton.title = "Reply to message " + msg.id;
  replyButton.addEventListener("click", () => startReply(msg));
  head.appendChild(replyButton);
  card.appendChild(head);

  const body = make("div", "card-body markdown");
  body.appendChild(renderMarkdown(msg.text));
  card.appendChild(body);

  li.appendChild(card);
  return li;
}
