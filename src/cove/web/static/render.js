/* Markdown rendering for model output: marked (GFM) with raw HTML shown as text, code highlighted
   by highlight.js, $…$ / $$…$$ / \(…\) / \[…\] maths by KaTeX (trust off), and the result passed
   through DOMPurify before it touches the DOM. User text never goes through here: it is shown
   with textContent. */
(function () {
  "use strict";
  const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  function tex(src, display) {
    try {
      return katex.renderToString(src, { displayMode: display, throwOnError: false, trust: false,
                                         strict: "ignore", maxExpand: 500, maxSize: 50 });
    } catch (e) {
      return "<code>" + escapeHtml(src) + "</code>";
    }
  }

  const mathBlock = {
    name: "mathBlock", level: "block",
    start(src) { const i = src.search(/\$\$|\\\[/); return i < 0 ? undefined : i; },
    tokenizer(src) {
      const m = /^\$\$([\s\S]+?)\$\$/.exec(src) || /^\\\[([\s\S]+?)\\\]/.exec(src);
      if (m) return { type: "mathBlock", raw: m[0], text: m[1].trim() };
    },
    renderer(token) { return '<div class="math">' + tex(token.text, true) + "</div>"; },
  };
  const mathInline = {
    name: "mathInline", level: "inline",
    start(src) { const i = src.search(/\$|\\\(/); return i < 0 ? undefined : i; },
    tokenizer(src) {
      const m = /^\$\$([^$]+?)\$\$/.exec(src) || /^\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\d)/.exec(src)
        || /^\\\(([\s\S]+?)\\\)/.exec(src);
      if (m) return { type: "mathInline", raw: m[0], text: m[1], display: m[0].startsWith("$$") };
    },
    renderer(token) { return tex(token.text, token.display); },
  };

  marked.use({
    gfm: true, breaks: false,
    extensions: [mathBlock, mathInline],
    renderer: {
      html(token) { return escapeHtml(token.text || token.raw || ""); },
      code(token) {
        const lang = (token.lang || "").trim().split(/\s+/)[0].toLowerCase();
        let body;
        if (lang && hljs.getLanguage(lang)) {
          body = hljs.highlight(token.text, { language: lang, ignoreIllegals: true }).value;
        } else {
          body = escapeHtml(token.text);
        }
        const cls = lang ? ' class="hljs language-' + escapeHtml(lang) + '"' : ' class="hljs"';
        return "<pre><code" + cls + ">" + body + "</code></pre>";
      },
    },
  });

  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });

  /** Safe HTML for a markdown string (model output). */
  window.coveRender = function (src) {
    const html = marked.parse(String(src || ""), { async: false });
    return DOMPurify.sanitize(html, { FORBID_TAGS: ["style", "form", "input", "textarea",
      "button", "select", "iframe", "object", "embed"], FORBID_ATTR: ["srcset"] });
  };
  window.coveEscape = escapeHtml;
})();
