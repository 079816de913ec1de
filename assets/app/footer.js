// The footer: the relay's MCP endpoint address, with a button to copy it.
import { el } from "./dom.js";

const mcpUrl = location.origin + "/mcp";
el.mcpUrl.textContent = mcpUrl;
el.copyMcp.addEventListener("click", () => {
  const done = () => {
    el.copyMcp.textContent = "Copied";
    setTimeout(() => {
      el.copyMcp.textContent = "Copy";
    }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(mcpUrl).then(done, () => {});
  } else {
    // Without the clipboard API (plain http on another host) the address is selected instead.
    const range = document.createRange();
    range.selectNodeContents(el.mcpUrl);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
});
