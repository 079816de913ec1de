// The relay's web page, as ES modules under /assets/app/: it shows one channel's conversation
// live (the latest page over REST, then the event stream from the last id seen), renders each
// message as sanitized markdown, and posts through the composer. This entry module loads the
// page's parts and starts it: the channel list first, then the channel the address names. It
// starts again when the reader enters a token, and keeps trying while the relay is down.
import { refreshChannels } from "./app/channels.js";
import { setStatus } from "./app/composer.js";
import { openAddress } from "./app/conversation.js";
import "./app/footer.js";
import { setLive } from "./app/live.js";
import "./app/search.js";
import { fillSenders } from "./app/senders.js";
import "./app/theme-toggle.js";
import { onTokenEntered } from "./app/token.js";

async function start() {
  fillSenders();
  try {
    await refreshChannels();
  } catch (err) {
    if (err.status === 401) return; // the token dialog is up; entering a token starts again
    setLive("offline", "Offline");
    setStatus(err.message, "error");
    // Keep trying until the relay answers.
    setTimeout(start, 3000);
    return;
  }
  await openAddress();
}

onTokenEntered(start);
start();
