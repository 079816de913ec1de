// Message text to DOM: GitHub-flavoured markdown (marked), sanitized (DOMPurify), code
// highlighted (highlight.js). Message text is untrusted: it only ever reaches the DOM through
// DOMPurify, and the page's Content-Security-Policy forbids inline scripts and styles as a
// second wall. The three libraries are the vendored scripts the page loads before this module.
const { marked, DOMPurify, hljs } = window;

const purifyConfig = {
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

const md = new marked.Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    html: (token) => scrubRawHtml(token.text),
  },
});

if (DOMPurify && DOMPurify.addHook) {
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    const tag = node.nodeName;
    if (tag === "A" && node.hasAttribute("href")) {
      node.setAttribute("rel", "noopener noreferrer nofollow");
      if (!/^#/.test(node.getAttribute("href"))) node.setAttribute("target", "_blank");
    }
    if (tag === "IMG" || tag === "VIDEO" || tag === "AUDIO" || tag === "SOURCE") {
      // A linked image or medium becomes a link the reader may follow instead.
      const src = node.getAttribute("src");
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

/** A sanitized DocumentFragment showing `text` as markdown. */
export function renderMarkdown(text) {
  let html;
  try {
    html = md.parse(String(text));
  } catch (e) {
    html = "";
  }
  const frag = DOMPurify.sanitize(html, purifyConfig);
  // Blocked remote images become plain links: the reader sees where they point.
  frag.querySelectorAll("[data-blocked-src]").forEach((node) => {
    const a = document.createElement("a");
    const src = node.getAttribute("data-blocked-src");
    if (/^https?:/i.test(src)) {
      a.href = src;
      a.target = "_blank";
      a.rel = "noopener noreferrer nofollow";
    }
    a.className = "blocked-media";
    a.textContent = "[image: " + (node.getAttribute("alt") || src) + "]";
    node.replaceWith(a);
  });
  frag.querySelectorAll("pre code").forEach((code) => {
    const m = /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
    const lang = m && m[1].toLowerCase();
    if (lang && hljs && hljs.getLanguage(lang)) {
      // Highlighting works on the text of a sanitized node and emits escaped spans.
      const out = hljs.highlight(code.textContent, { language: lang, ignoreIllegals: true });
      code.innerHTML = out.value;
      code.classList.add("hljs");
    }
    const pre = code.parentNode;
    pre.classList.add("code-block");
    if (lang) pre.setAttribute("data-lang", lang);
  });
  frag.querySelectorAll("table").forEach((table) => {
    const wrap = document.createElement("div");
    wrap.className = "table-wrap";
    table.replaceWith(wrap);
    wrap.appendChild(table);
  });
  return frag;
}
