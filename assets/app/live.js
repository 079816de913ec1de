// The live indicator in the top bar: connecting, live, reconnecting, offline or token needed.
import { el } from "./dom.js";

export function setLive(stateName, text) {
  el.live.setAttribute("data-state", stateName);
  el.liveText.textContent = text;
}
