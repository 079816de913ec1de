// The relay's web page: shows one channel's conversation live (GET /api/messages for the
// latest page, then the /api/stream event stream from the last id seen), renders each message
// as sanitized GitHub-flavoured markdown with highlighted code, and posts through the composer.
// Message text is untrusted: it only ever reaches the DOM through DOMPurify, and the page's
// Content-Security-Policy forbids inline scripts and styles as a second wall.
(function () {
  "use strict";

  var PAGE_LIMIT = 200;
  var DEFAULT_SENDERS = ["web-ui", "codex", "claude", "user"];
  var COLLAPSED_PX = 320; // a long message shows about this much until "Show more"
  var CODE_COLLAPSED_PX = 1400; // ...unless it holds code (a diff): then this much, to read it whole
  var COLLAPSE_SLACK_PX = 80; // ...but is not collapsed just to hide a couple of lines
  var AT_BOTTOM_PX = 48; // this close to the end counts as "reading the newest"
  var TOKEN_KEY = "relay.token";
  var SENDER_KEY = "relay.sender";

  var $ = function (id) { return document.getElementById(id); };
  var el = {
    channel: $("channel"),
    live: $("live"),
    liveText: $("live-text"),
    listening: $("listening"),
    themeToggle: $("theme-toggle"),
    expandAll: $("expand-all"),
    senderList: $("sender-list"),
    scroller: $("scroller"),
    messages: $("messages"),
    empty: $("empty"),
    notice: $("notice"),
    jump: $("jump"),
    composer: $("composer"),
    sender: $("sender"),
    target: $("target"),
    text: $("text"),
    send: $("send"),
    status: $("status"),
    sendKeys: $("send-keys"),
    mcpUrl: $("mcp-url"),
    copyMcp: $("copy-mcp"),
    tokenDialog: $("token-dialog"),
    tokenForm: $("token-form"),
    tokenInput: $("token-input"),
    tokenError: $("token-error"),
    replying: $("replying"),
    replyingText: $("replying-text"),
    replyCancel: $("reply-cancel"),
    searchForm: $("search-form"),
    searchInput: $("search-input"),
    searchResults: $("search-results"),
    searchList: $("search-list"),
    searchSummary: $("search-summary"),
    searchClose: $("search-close"),
  };

  var state = {
    token: readStorage(TOKEN_KEY),
    channels: [],
    channel: null,
    lastId: 0, // highest message id shown for the current channel
    shown: new Set(), // ids on screen, so a replayed event is never drawn twice
    expanded: new Set(), // ids the reader expanded; survives re-renders and channel switches
    expandAll: false, // "Expand all" is on: every card, present and future, shows in full
    senders: new Set(DEFAULT_SENDERS),
    stream: null,
    retryTimer: null,
    retryDelay: 1000,
    generation: 0, // bumps on channel switch so late answers for the old channel are dropped
    unseen: 0,
    replyTo: null, // the message the composer answers: {id, target}, or null
  };

  // ---------------------------------------------------------------- storage and cookies

  function readStorage(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }
  function writeStorage(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch (e) { /* private mode: the setting lasts for this page only */ }
  }

  // ---------------------------------------------------------------- theme

  function currentTheme() {
    return document.documentElement.getAttribute("data-theme") === "dark" ? "dark" : "light";
  }
  function applyTheme(theme) {
    document.documentElement.setAttribute("data-theme", theme);
    var other = theme === "dark" ? "light" : "dark";
    el.themeToggle.setAttribute("aria-label", "Switch to " + other + " theme");
    el.themeToggle.title = "Switch to " + other + " theme";
  }
  function hasThemeCookie() {
    return /(?:^|;\s*)theme=(light|dark)(?:;|$)/.test(document.cookie);
  }
  el.themeToggle.addEventListener("click", function () {
    var next = currentTheme() === "dark" ? "light" : "dark";
    document.cookie = "theme=" + next + "; Path=/; Max-Age=31536000; SameSite=Lax";
    applyTheme(next);
  });
  if (window.matchMedia) {
    // Until the reader picks a theme, follow the system as it changes (e.g. at dusk).
    var mq = window.matchMedia("(prefers-color-scheme: dark)");
    var follow = function () { if (!hasThemeCookie()) applyTheme(mq.matches ? "dark" : "light"); };
    if (mq.addEventListener) mq.addEventListener("change", follow);
  }
  applyTheme(currentTheme());

  // ---------------------------------------------------------------- API

  function ApiError(status, message) {
    this.status = status;
    this.message = message;
  }

  function api(method, path, body) {
    var headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    var init = { method: method, headers: headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      return res.text().then(function (raw) {
        var data = null;
        try { data = raw ? JSON.parse(raw) : null; } catch (e) { data = null; }
        if (res.status === 401) {
          askForToken(state.token ? "That token was not accepted." : "");
          throw new ApiError(401, (data && data.error) || "a token is required");
        }
        if (!res.ok) {
          throw new ApiError(res.status, (data && data.error) || raw || ("HTTP " + res.status));
        }
        return data;
      });
    }, function (err) {
      throw new ApiError(0, "the relay cannot be reached (" + (err && err.message || err) + ")");
    });
  }

  // ---------------------------------------------------------------- token

  function askForToken(error) {
    if (error) {
      el.tokenError.textContent = error;
      el.tokenError.hidden = false;
    } else {
      el.tokenError.hidden = true;
    }
    if (!el.tokenDialog.hidden) return;
    setLive("offline", "Token needed");
    el.tokenDialog.hidden = false;
    el.tokenInput.value = "";
    el.tokenInput.focus();
  }
  el.tokenForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var t = el.tokenInput.value.trim();
    if (!t) return;
    state.token = t;
    writeStorage(TOKEN_KEY, t);
    el.tokenDialog.hidden = true;
    start();
  });

  // ---------------------------------------------------------------- live indicator

  function setLive(stateName, text) {
    el.live.setAttribute("data-state", stateName);
    el.liveText.textContent = text;
  }

  // ---------------------------------------------------------------- markdown

  var purifyConfig = {
    USE_PROFILES: { html: true },
    // Styles are refused by the CSP anyway (and would log errors); forms could post.
    FORBID_TAGS: ["style", "form", "button", "textarea", "select", "option", "dialog"],
    FORBID_ATTR: ["style", "autofocus"],
    // GitHub's own defence against DOM clobbering: user ids/names become user-content-*.
    SANITIZE_NAMED_PROPS: true,
    RETURN_DOM_FRAGMENT: true,
  };

  // Only images embedded in the message itself are shown. Anything else, even from the relay,
  // would make the reader's browser fetch a URL chosen by whoever wrote the message.
  function embeddedImage(url) {
    return /^data:image\/(png|gif|jpe?g|webp);/i.test(url);
  }

  // Raw HTML in a message goes through DOMPurify like everything else. Before that, event
  // handler and style attributes and <style> elements are cut from the raw text: parsing
  // them, even in DOMPurify's inert document, makes Chromium report a CSP violation on the
  // console for each. This is noise reduction, not the defence: whatever it misses is still
  // removed by DOMPurify and blocked by the CSP.
  function scrubRawHtml(html) {
    return String(html)
      .replace(/<\/?style\b[^>]*>/gi, "")
      .replace(/([\s\/"'])(?:on[a-z]+|style)\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)/gi, "$1");
  }

  var md = new marked.Marked({
    gfm: true,
    breaks: true,
    async: false,
    renderer: {
      html: function (token) { return scrubRawHtml(token.text); },
    },
  });

  if (window.DOMPurify && DOMPurify.addHook) {
    DOMPurify.addHook("afterSanitizeAttributes", function (node) {
      var tag = node.nodeName;
      if (tag === "A" && node.hasAttribute("href")) {
        node.setAttribute("rel", "noopener noreferrer nofollow");
        if (!/^#/.test(node.getAttribute("href"))) node.setAttribute("target", "_blank");
      }
      if (tag === "IMG" || tag === "VIDEO" || tag === "AUDIO" || tag === "SOURCE") {
        // A linked image or medium becomes a link the reader may follow instead.
        var src = node.getAttribute("src");
        if (src && !(tag === "IMG" && embeddedImage(src))) {
          node.removeAttribute("src");
          node.setAttribute("data-blocked-src", src);
        }
        node.removeAttribute("srcset");
        node.removeAttribute("poster");
      }
      if (tag === "INPUT") {
        // GFM task lists are the only inputs markdown makes; keep them as read-only ticks.
        if ((node.getAttribute("type") || "").toLowerCase() !== "checkbox") {
          node.setAttribute("type", "checkbox");
        }
        node.setAttribute("disabled", "");
        node.removeAttribute("name");
      }
    });
  }

  function renderMarkdown(text) {
    var html;
    try {
      html = md.parse(String(text));
    } catch (e) {
      html = "";
    }
    var frag = DOMPurify.sanitize(html, purifyConfig);
    // Blocked remote images become plain links: the reader sees where they point.
    frag.querySelectorAll("[data-blocked-src]").forEach(function (node) {
      var a = document.createElement("a");
      var src = node.getAttribute("data-blocked-src");
      if (/^https?:/i.test(src)) {
        a.href = src;
        a.target = "_blank";
        a.rel = "noopener noreferrer nofollow";
      }
      a.className = "blocked-media";
      a.textContent = "[image: " + (node.getAttribute("alt") || src) + "]";
      node.replaceWith(a);
    });
    frag.querySelectorAll("pre code").forEach(function (code) {
      var m = /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
      var lang = m && m[1].toLowerCase();
      if (lang && window.hljs && hljs.getLanguage(lang)) {
        // Highlighting works on the text of a sanitized node and emits escaped spans.
        var out = hljs.highlight(code.textContent, { language: lang, ignoreIllegals: true });
        code.innerHTML = out.value;
        code.classList.add("hljs");
      }
      var pre = code.parentNode;
      pre.classList.add("code-block");
      if (lang) pre.setAttribute("data-lang", lang);
    });
    frag.querySelectorAll("table").forEach(function (table) {
      var wrap = document.createElement("div");
      wrap.className = "table-wrap";
      table.replaceWith(wrap);
      wrap.appendChild(table);
    });
    return frag;
  }

  // ---------------------------------------------------------------- time

  var timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", second: "2-digit" });
  var dateTimeFmt = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
  });
  var fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });

  function formatTime(date) {
    var now = new Date();
    return date.toDateString() === now.toDateString() ? timeFmt.format(date) : dateTimeFmt.format(date);
  }

  // ---------------------------------------------------------------- message cards

  var KNOWN_SENDERS = { claude: 1, codex: 1, "web-ui": 1, user: 1, gemini: 1 };
  function senderClass(sender) {
    var s = String(sender).toLowerCase();
    if (KNOWN_SENDERS[s]) return "sender-" + s;
    var h = 0;
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
    return "sender-p" + (h % 6);
  }

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function buildCard(msg) {
    var li = make("li", "entry " + senderClass(msg.sender));
    li.id = "m" + msg.id;
    li.setAttribute("data-id", String(msg.id));

    // Two letters, so claude and codex are told apart at a glance.
    var letters = Array.from(String(msg.sender).trim().replace(/[^\p{L}\p{N}]/gu, ""));
    var avatar = make("span", "avatar",
      letters.length ? letters[0].toUpperCase() + (letters[1] || "").toLowerCase() : "?");
    avatar.setAttribute("aria-hidden", "true");
    li.appendChild(avatar);

    var card = make("article", "card");
    card.setAttribute("aria-labelledby", "m" + msg.id + "-h");
    var head = make("header", "card-head");
    head.id = "m" + msg.id + "-h";
    var from = make("strong", "from", msg.sender);
    from.title = "from " + msg.sender;
    head.appendChild(from);
    var to = make("span", "to");
    to.appendChild(document.createTextNode("to "));
    to.appendChild(make("span", "to-name", msg.target));
    head.appendChild(to);
    var date = new Date(msg.ts * 1000);
    var time = make("time", "when", formatTime(date));
    if (!isNaN(date.getTime())) {
      time.dateTime = date.toISOString();
      time.title = fullFmt.format(date);
    }
    head.appendChild(time);
    var idTag = make("span", "msg-id", "#" + msg.id);
    idTag.title = "message id " + msg.id;
    head.appendChild(idTag);
    if (typeof msg.reply_to === "number") {
      // The answered card has id "m<id>", so the browser scrolls to it; such a hash is
      // never read as a channel name.
      var answered = make("a", "reply-link", "↩ #" + msg.reply_to);
      answered.href = "#m" + msg.reply_to;
      answered.title = "a reply to message " + msg.reply_to;
      head.appendChild(answered);
    }
    var replyButton = make("button", "reply-button link-button", "Reply");
    replyButton.type = "button";
    replyButton.title = "Reply to message " + msg.id;
    replyButton.addEventListener("click", function () { startReply(msg); });
    head.appendChild(replyButton);
    card.appendChild(head);

    var body = make("div", "card-body markdown");
    body.appendChild(renderMarkdown(msg.text));
    card.appendChild(body);

    li.appendChild(card);
    return li;
  }

  // Decides, after layout, which of the new cards are long enough to fold. Reads every height
  // first and writes afterwards, so a page of 200 messages costs one layout, not 200.
  function foldLongCards(items) {
    var limits = items.map(function (li) {
      return li.querySelector(".card-body pre") ? CODE_COLLAPSED_PX : COLLAPSED_PX;
    });
    var tall = items.filter(function (li, i) {
      return li.querySelector(".card-body").scrollHeight > limits[i] + COLLAPSE_SLACK_PX;
    });
    tall.forEach(function (li) {
      var id = Number(li.getAttribute("data-id"));
      var body = li.querySelector(".card-body");
      body.style.setProperty("--fold-px", limits[items.indexOf(li)] + "px");
      var toggle = make("button", "fold-toggle");
      toggle.type = "button";
      toggle.setAttribute("aria-controls", body.id = "m" + id + "-body");
      var card = li.querySelector(".card");
      card.appendChild(toggle);
      setFolded(li, !state.expandAll && !state.expanded.has(id));
      toggle.addEventListener("click", function () {
        var fold = !li.classList.contains("folded");
        if (fold) state.expanded.delete(id);
        else state.expanded.add(id);
        setFolded(li, fold);
        // Folding a card the reader has scrolled past would throw them far down the page.
        if (fold && li.getBoundingClientRect().top < el.scroller.getBoundingClientRect().top) {
          li.scrollIntoView({ block: "start" });
        }
      });
    });
  }

  function setFolded(li, folded) {
    li.classList.toggle("folded", folded);
    var toggle = li.querySelector(".fold-toggle");
    toggle.textContent = folded ? "Show more" : "Show less";
    toggle.setAttribute("aria-expanded", folded ? "false" : "true");
  }

  el.expandAll.addEventListener("click", function () {
    state.expandAll = !state.expandAll;
    el.expandAll.textContent = state.expandAll ? "Collapse all" : "Expand all";
    el.expandAll.setAttribute("aria-pressed", state.expandAll ? "true" : "false");
    el.messages.querySelectorAll(".fold-toggle").forEach(function (toggle) {
      var li = toggle.closest(".entry");
      var id = Number(li.getAttribute("data-id"));
      if (!state.expandAll) state.expanded.delete(id);
      setFolded(li, !state.expandAll);
    });
  });

  function isAtBottom() {
    var s = el.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= AT_BOTTOM_PX;
  }
  function scrollToBottom() {
    el.scroller.scrollTop = el.scroller.scrollHeight;
  }

  function noteSender(sender) {
    if (state.senders.has(sender)) return;
    state.senders.add(sender);
    fillSenders();
  }

  // Adds messages (ascending, possibly overlapping what is shown) to the timeline.
  function addMessages(list, opts) {
    var follow = (opts && opts.forceBottom) || isAtBottom();
    var fresh = [];
    var frag = document.createDocumentFragment();
    list.forEach(function (msg) {
      if (!msg || typeof msg.id !== "number" || state.shown.has(msg.id)) return;
      if (msg.target !== state.channel) return;
      state.shown.add(msg.id);
      if (msg.id > state.lastId) state.lastId = msg.id;
      noteSender(msg.sender);
      var li = buildCard(msg);
      fresh.push(li);
      frag.appendChild(li);
    });
    if (!fresh.length) return;
    // Events arrive in id order; should one ever be older than what is shown, put it in place.
    var firstId = Number(fresh[0].getAttribute("data-id"));
    var last = el.messages.lastElementChild;
    if (last && Number(last.getAttribute("data-id")) > firstId) {
      fresh.forEach(insertInOrder);
    } else {
      el.messages.appendChild(frag);
    }
    foldLongCards(fresh);
    el.empty.hidden = true;
    if (follow) {
      scrollToBottom();
    } else if (!(opts && opts.initial)) {
      state.unseen += fresh.length;
      el.jump.textContent = state.unseen === 1 ? "1 new message ↓" : state.unseen + " new messages ↓";
      el.jump.hidden = false;
    }
  }

  // Drops what a `deleted` event names from the timeline.
  function removeDeleted(deletion) {
    if (!deletion) return;
    var gone = [];
    if (typeof deletion.id === "number") {
      gone = [deletion.id];
    } else if (deletion.target === state.channel && typeof deletion.through === "number") {
      state.shown.forEach(function (id) { if (id <= deletion.through) gone.push(id); });
    }
    gone.forEach(function (id) {
      var li = document.getElementById("m" + id);
      if (li && li.parentNode === el.messages) li.remove();
    });
    if (!el.messages.firstElementChild) {
      el.empty.textContent = "No messages on " + state.channel + ".";
      el.empty.hidden = false;
    }
  }

  function insertInOrder(li) {
    var id = Number(li.getAttribute("data-id"));
    var node = el.messages.lastElementChild;
    while (node && Number(node.getAttribute("data-id")) > id) node = node.previousElementSibling;
    el.messages.insertBefore(li, node ? node.nextSibling : el.messages.firstChild);
  }

  el.scroller.addEventListener("scroll", function () {
    if (!el.jump.hidden && isAtBottom()) {
      state.unseen = 0;
      el.jump.hidden = true;
    }
  }, { passive: true });
  el.jump.addEventListener("click", function () {
    scrollToBottom();
    state.unseen = 0;
    el.jump.hidden = true;
  });

  // ---------------------------------------------------------------- channels and selectors

  function fillSelect(select, values, selected) {
    var keep = selected !== undefined ? selected : select.value;
    select.textContent = "";
    values.forEach(function (v) {
      var opt = document.createElement("option");
      opt.value = v;
      opt.textContent = v;
      select.appendChild(opt);
    });
    if (keep && values.indexOf(keep) >= 0) select.value = keep;
  }

  function fillSenders() {
    var list = Array.from(state.senders).sort(function (a, b) {
      // The defaults first, in their order; then everyone else alphabetically.
      var ia = DEFAULT_SENDERS.indexOf(a), ib = DEFAULT_SENDERS.indexOf(b);
      if (ia >= 0 || ib >= 0) return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
      return a.localeCompare(b);
    });
    // From is typed or picked: the known senders are suggestions, any name is accepted.
    el.senderList.textContent = "";
    list.forEach(function (v) {
      var opt = document.createElement("option");
      opt.value = v;
      el.senderList.appendChild(opt);
    });
    if (!el.sender.value) el.sender.value = readStorage(SENDER_KEY) || "web-ui";
  }

  function setChannels(channels) {
    var list = channels.slice();
    if (state.channel && list.indexOf(state.channel) < 0) list.push(state.channel);
    list.sort();
    state.channels = list;
    fillSelect(el.channel, list, state.channel || undefined);
    fillSelect(el.target, list, el.target.value || state.channel || undefined);
  }

  function refreshChannels() {
    return api("GET", "/api/channels?detail=1").then(function (data) {
      state.listening = {};
      ((data && data.detail) || []).forEach(function (c) {
        state.listening[c.name] = c.listeners || [];
      });
      setChannels((data && data.channels) || []);
      showListening();
    });
  }

  // The agents that said who they are and are waiting on `channel` now (this page and other
  // anonymous readers are left out).
  function listeningNames(channel) {
    var names = [];
    ((state.listening || {})[channel] || []).forEach(function (l) {
      if (l.name && names.indexOf(l.name) < 0) names.push(l.name);
    });
    return names;
  }

  function showListening() {
    Array.prototype.forEach.call(el.channel.options, function (opt) {
      var names = listeningNames(opt.value);
      opt.textContent = names.length ? opt.value + " · " + names.join(", ") + " listening" : opt.value;
    });
    var here = listeningNames(state.channel);
    el.listening.textContent = here.length
      ? here.join(", ") + (here.length > 1 ? " are" : " is") + " listening"
      : "";
    el.listening.title = here.length ? "Waiting for messages on " + state.channel + " now" : "";
    el.listening.hidden = here.length === 0;
  }

  function channelFromHash() {
    try {
      var h = decodeURIComponent(location.hash.replace(/^#/, ""));
      return /^m\d+$/.test(h) ? null : h || null;
    } catch (e) {
      return null;
    }
  }

  function pickInitialChannel() {
    var wanted = channelFromHash();
    if (wanted) return wanted;
    if (state.channels.indexOf("proj-x") >= 0) return "proj-x";
    return state.channels[0] || "proj-x";
  }

  // ---------------------------------------------------------------- the stream

  function closeStream() {
    if (state.stream) {
      state.stream.close();
      state.stream = null;
    }
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
  }

  function streamUrl() {
    var q = "target=" + encodeURIComponent(state.channel) + "&since_id=" + state.lastId;
    if (state.token) q += "&token=" + encodeURIComponent(state.token);
    return "/api/stream?" + q;
  }

  function openStream() {
    closeStream();
    var gen = state.generation;
    var es = new EventSource(streamUrl());
    state.stream = es;
    es.addEventListener("open", function () {
      if (gen !== state.generation) return;
      state.retryDelay = 1000;
      setLive("live", "Live");
    });
    es.addEventListener("message", function (ev) {
      if (gen !== state.generation) return;
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      addMessages([msg]);
    });
    es.addEventListener("deleted", function (ev) {
      if (gen !== state.generation) return;
      try { removeDeleted(JSON.parse(ev.data)); } catch (e) { /* not ours to show */ }
    });
    es.addEventListener("error", function () {
      if (gen !== state.generation) return;
      if (es.readyState === EventSource.CONNECTING) {
        // The browser reconnects by itself and sends Last-Event-ID: nothing is missed.
        setLive("reconnecting", "Reconnecting");
        return;
      }
      // Closed for good (an HTTP error, or the relay went away while connecting): find out
      // whether a token is needed, otherwise try again later from the last id shown.
      es.close();
      state.stream = null;
      setLive("reconnecting", "Reconnecting");
      scheduleReconnect(gen);
    });
  }

  function scheduleReconnect(gen) {
    clearTimeout(state.retryTimer);
    var delay = state.retryDelay;
    state.retryDelay = Math.min(state.retryDelay * 2, 15000);
    state.retryTimer = setTimeout(function () {
      if (gen !== state.generation) return;
      // Catch up over REST first: it also tells a 401 apart from a relay that is down.
      catchUp(gen).then(function () {
        if (gen === state.generation) openStream();
      }, function (err) {
        if (gen !== state.generation) return;
        // On 401 the token dialog is up, and submitting it starts everything afresh.
        if (err && err.status === 401) return;
        scheduleReconnect(gen);
      });
    }, delay);
  }

  // Fetches everything after the last id shown, a page at a time.
  function catchUp(gen) {
    var url = "/api/messages?target=" + encodeURIComponent(state.channel) +
      "&since_id=" + state.lastId + "&limit=" + PAGE_LIMIT;
    return api("GET", url).then(function (data) {
      if (gen !== state.generation) return;
      var list = (data && data.messages) || [];
      addMessages(list);
      if (list.length >= PAGE_LIMIT) return catchUp(gen);
    });
  }

  // ---------------------------------------------------------------- switching channels

  function showChannel(name) {
    state.generation++;
    var gen = state.generation;
    closeStream();
    state.channel = name;
    showListening();
    state.lastId = 0;
    state.shown = new Set();
    state.unseen = 0;
    el.jump.hidden = true;
    el.messages.textContent = "";
    el.empty.hidden = true;
    el.notice.hidden = true;
    if (state.channels.indexOf(name) < 0) setChannels(state.channels.concat([name]));
    el.channel.value = name;
    el.target.value = name;
    document.title = name + " · Relay";
    if (channelFromHash() !== name) history.replaceState(null, "", "#" + encodeURIComponent(name));
    setLive("connecting", "Connecting");

    var url = "/api/messages?target=" + encodeURIComponent(name) + "&limit=" + PAGE_LIMIT;
    return api("GET", url).then(function (data) {
      if (gen !== state.generation) return;
      var list = (data && data.messages) || [];
      addMessages(list, { initial: true, forceBottom: true });
      if (list.length >= PAGE_LIMIT) {
        el.notice.textContent = "Showing the latest " + PAGE_LIMIT + " messages of " + name + ".";
        el.notice.hidden = false;
      }
      if (!list.length) {
        el.empty.textContent = "No messages on " + name + " yet. Anything posted here appears at once.";
        el.empty.hidden = false;
      }
      openStream();
    }, function (err) {
      if (gen !== state.generation) return;
      if (err.status === 401) return; // the token dialog is up; start() runs again after it
      setLive("offline", "Offline");
      el.empty.textContent = "Could not load " + name + ": " + err.message;
      el.empty.hidden = false;
      scheduleReconnect(gen);
    });
  }

  el.channel.addEventListener("change", function () {
    showChannel(el.channel.value);
  });
  // Who is listening changes without any message; look again now and then.
  setInterval(function () { refreshChannels().catch(function () {}); }, 15000);
  // The list of channels grows as agents post to new targets; refresh it when the reader is
  // about to choose, instead of polling.
  ["focus", "mousedown"].forEach(function (type) {
    el.channel.addEventListener(type, function () { refreshChannels().catch(function () {}); });
    el.target.addEventListener(type, function () { refreshChannels().catch(function () {}); });
  });
  window.addEventListener("hashchange", function () {
    var wanted = channelFromHash();
    if (wanted && wanted !== state.channel) showChannel(wanted);
  });

  // ---------------------------------------------------------------- composer

  var isMac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
  if (isMac) {
    el.sendKeys.textContent = "⌘";
    el.text.placeholder = "Write a message… Markdown works. ⌘+Enter sends.";
  }

  function setStatus(text, kind) {
    el.status.textContent = text;
    el.status.className = "status" + (kind ? " " + kind : "");
  }

  function startReply(msg) {
    state.replyTo = { id: msg.id, target: msg.target };
    el.target.value = msg.target;
    el.replyingText.textContent = "Replying to #" + msg.id + " from " + msg.sender;
    el.replying.hidden = false;
    el.text.focus();
  }

  function stopReply() {
    state.replyTo = null;
    el.replying.hidden = true;
  }

  el.replyCancel.addEventListener("click", function () {
    stopReply();
    el.text.focus();
  });

  var sending = false;
  function send() {
    if (sending) return;
    var text = el.text.value;
    var target = el.target.value.trim();
    var sender = el.sender.value.trim();
    if (!text.trim()) {
      setStatus("Write something first.", "error");
      el.text.focus();
      return;
    }
    if (!target || !sender) {
      setStatus("Choose who it is from and where it goes.", "error");
      return;
    }
    sending = true;
    el.send.disabled = true;
    el.send.textContent = "Sending…";
    setStatus("Sending…", "");
    writeStorage(SENDER_KEY, sender);
    var body = { target: target, sender: sender, text: text, source: "web-ui" };
    if (state.replyTo && state.replyTo.target === target) body.reply_to = state.replyTo.id;
    api("POST", "/api/messages", body)
      .then(function (data) {
        el.text.value = "";
        stopReply();
        var id = data && data.posted;
        setStatus("Sent #" + id + (target !== state.channel ? " to " + target : ""), "ok");
        if (data && data.message && target === state.channel) {
          // The stream will bring it too; showing it now makes the page feel instant.
          addMessages([data.message], { forceBottom: true });
        }
        if (state.channels.indexOf(target) < 0) refreshChannels().catch(function () {});
      }, function (err) {
        setStatus("Not sent: " + err.message, "error");
      })
      .then(function () {
        sending = false;
        el.send.disabled = false;
        el.send.textContent = "Send";
        el.text.focus();
      });
  }

  el.composer.addEventListener("submit", function (ev) {
    ev.preventDefault();
    send();
  });
  el.text.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      send();
    }
  });
  el.sender.addEventListener("change", function () { writeStorage(SENDER_KEY, el.sender.value); });

  // ---------------------------------------------------------------- search

  function showSearch(query) {
    var url = "/api/search?q=" + encodeURIComponent(query) + "&limit=50";
    el.searchSummary.textContent = "Searching…";
    el.searchList.textContent = "";
    el.searchResults.hidden = false;
    api("GET", url).then(function (data) {
      var hits = (data && data.messages) || [];
      el.searchSummary.textContent = hits.length
        ? hits.length + (hits.length === 50 ? "+" : "") + " messages contain “" + query + "”, newest first"
        : "No message contains “" + query + "”.";
      hits.forEach(function (msg) {
        var li = make("li", "search-hit");
        var link = make("a", "search-link");
        link.href = "#" + encodeURIComponent(msg.target);
        link.appendChild(make("span", "msg-id", "#" + msg.id));
        link.appendChild(make("span", "search-channel", msg.target));
        link.appendChild(make("strong", "from", msg.sender));
        var line = String(msg.text).split("\n").map(function (l) { return l.trim(); })
          .filter(Boolean)[0] || "";
        link.appendChild(make("span", "search-line", line));
        link.addEventListener("click", function (ev) {
          ev.preventDefault();
          el.searchResults.hidden = true;
          var reveal = function () {
            var card = document.getElementById("m" + msg.id);
            if (!card) return;
            card.scrollIntoView({ block: "center" });
            card.classList.add("flash");
            setTimeout(function () { card.classList.remove("flash"); }, 1600);
          };
          if (msg.target === state.channel) {
            reveal();
          } else {
            showChannel(msg.target).then(reveal);
          }
        });
        li.appendChild(link);
        el.searchList.appendChild(li);
      });
    }, function (err) {
      el.searchSummary.textContent = "Search failed: " + err.message;
    });
  }

  el.searchForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var query = el.searchInput.value.trim();
    if (query) showSearch(query);
  });
  el.searchClose.addEventListener("click", function () {
    el.searchResults.hidden = true;
  });

  // ---------------------------------------------------------------- footer

  var mcpUrl = location.origin + "/mcp";
  el.mcpUrl.textContent = mcpUrl;
  el.copyMcp.addEventListener("click", function () {
    var done = function () {
      el.copyMcp.textContent = "Copied";
      setTimeout(function () { el.copyMcp.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(mcpUrl).then(done, function () {});
    } else {
      var range = document.createRange();
      range.selectNodeContents(el.mcpUrl);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }
  });

  // ---------------------------------------------------------------- start

  function start() {
    fillSenders();
    refreshChannels().then(function () {
      return showChannel(pickInitialChannel());
    }, function (err) {
      if (err.status === 401) return;
      setLive("offline", "Offline");
      setStatus(err.message, "error");
      // Keep trying until the relay answers.
      setTimeout(start, 3000);
    });
  }

  start();
})();
