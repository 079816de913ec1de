// The page's elements by role, and the one helper that makes new ones. Every other module
// reaches the document through here, so the ids the page relies on are listed in one place.
const byId = (id) => document.getElementById(id);

export const el = {
  channel: byId("channel"),
  live: byId("live"),
  liveText: byId("live-text"),
  listening: byId("listening"),
  themeToggle: byId("theme-toggle"),
  expandAll: byId("expand-all"),
  senderList: byId("sender-list"),
  scroller: byId("scroller"),
  messages: byId("messages"),
  empty: byId("empty"),
  notice: byId("notice"),
  noticeText: byId("notice-text"),
  older: byId("older"),
  jump: byId("jump"),
  composer: byId("composer"),
  sender: byId("sender"),
  target: byId("target"),
  text: byId("text"),
  send: byId("send"),
  status: byId("status"),
  sendKeys: byId("send-keys"),
  mcpUrl: byId("mcp-url"),
  copyMcp: byId("copy-mcp"),
  tokenDialog: byId("token-dialog"),
  tokenForm: byId("token-form"),
  tokenInput: byId("token-input"),
  tokenError: byId("token-error"),
  replying: byId("replying"),
  replyingText: byId("replying-text"),
  replyCancel: byId("reply-cancel"),
  searchForm: byId("search-form"),
  searchInput: byId("search-input"),
  searchResults: byId("search-results"),
  searchList: byId("search-list"),
  searchSummary: byId("search-summary"),
  searchClose: byId("search-close"),
};

/** A new `tag` element with an optional class and text (text, never HTML). */
export function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
