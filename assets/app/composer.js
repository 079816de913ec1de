// The composer: posts the text as the chosen sender to the chosen channel (as a reply when one
// is being written, and only to that message's channel), shows the result on the status line,
// and keys Ctrl/⌘+Enter to send (Enter alone never does).
import { refreshChannels } from "./channels.js";
import { el } from "./dom.js";
import { stopReply } from "./replies.js";
import { state } from "./state.js";
import { SENDER_KEY, writeStorage } from "./storage.js";
import { addMessages } from "./timeline.js";
import { call } from "./token.js";

if (/Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent)) {
  el.sendKeys.textContent = "⌘";
  el.text.placeholder = "Write a message… Markdown works. ⌘+Enter sends.";
}

export function setStatus(text, kind) {
  el.status.textContent = text;
  el.status.className = "status" + (kind ? " " + kind : "");
}

let sending = false;

async function send() {
  if (sending) return;
  const text = el.text.value;
  const target = el.target.value.trim();
  const sender = el.sender.value.trim();
  if (!text.trim()) {
    setStatus("Write something first.", "error");
    el.text.focus();
    return;
  }
  if (!target || !sender) {
    setStatus("Choose who it is from and where it goes.", "error");
    return;
  }
  if (state.replyTo && state.replyTo.target !== target) {
    setStatus("Not sent: this answers #" + state.replyTo.id + " on " + state.replyTo.target +
      "; send it there or cancel the reply.", "error");
    return;
  }
  sending = true;
  el.send.disabled = true;
  el.send.textContent = "Sending…";
  setStatus("Sending…", "");
  writeStorage(SENDER_KEY, sender);
  const body = { target, sender, text, source: "web-ui" };
  if (state.replyTo) body.reply_to = state.replyTo.id;
  try {
    const data = await call("POST", "/api/messages", body);
    el.text.value = "";
    stopReply();
    const id = data && data.posted;
    setStatus("Sent #" + id + (target !== state.channel ? " to " + target : ""), "ok");
    if (data && data.message && target === state.channel) {
      // The stream will bring it too; showing it now makes the page feel instant.
      addMessages([data.message], { forceBottom: true });
    }
    if (!state.channels.includes(target)) refreshChannels().catch(() => {});
  } catch (err) {
    setStatus("Not sent: " + err.message, "error");
  }
  sending = false;
  el.send.disabled = false;
  el.send.textContent = "Send";
  el.text.focus();
}

el.composer.addEventListener("submit", (ev) => {
  ev.preventDefault();
  send();
});
el.text.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    send();
  }
});
el.sender.addEventListener("change", () => writeStorage(SENDER_KEY, el.sender.value));
// Enter in the one-line "From" field would submit the form; only Ctrl/⌘+Enter sends, so Enter
// moves on to the message instead.
el.sender.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.isComposing) {
    ev.preventDefault();
    if (ev.ctrlKey || ev.metaKey) send();
    else el.text.focus();
  }
});
// Choosing another channel to send to leaves the reply, which belongs to its own channel.
el.target.addEventListener("change", () => {
  if (state.replyTo && state.replyTo.target !== el.target.value) stopReply();
});
