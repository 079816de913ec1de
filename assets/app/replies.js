// Answering a message: the composer's "Replying to #id" line and the message it names.
import { el } from "./dom.js";
import { state } from "./state.js";

export function startReply(msg) {
  state.replyTo = { id: msg.id, target: msg.target };
  el.target.value = msg.target;
  el.replyingText.textContent = "Replying to #" + msg.id + " from " + msg.sender;
  el.replying.hidden = false;
  el.text.focus();
}

export function stopReply() {
  state.replyTo = null;
  el.replying.hidden = true;
}

el.replyCancel.addEventListener("click", () => {
  stopReply();
  el.text.focus();
});
