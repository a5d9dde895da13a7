/* Cove web app, answers with sources (the search feature): the composer's Search switch and
   its sources (your collections, knowledge packs (all, or the one chosen), the web: each offered
   only when this server and this caller have it), the `cove.search` field of a message, source cards under an answer,
   the passage dialog, and [n] markers checked against the list. Every text goes into the page
   with textContent. A classic script loaded before app.js: it exposes window.coveSources. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let offered = { collections: null, web: null, packs: null };
  const TAG = /(^|[^\w#&])#(\w[\w.-]*)/g;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  const tagKey = (name) => name.toLowerCase().replace(/_/g, " ").split(/\s+/).filter(Boolean).join("-");

  // what this caller may search (GET /web/search/sources); the switch shows only those
  async function refresh() {
    try {
      const r = await fetch("/web/search/sources", { credentials: "same-origin", headers: { "Accept": "application/json" } });
      offered = r.ok ? await r.json() : { collections: null, web: null, packs: null };
    } catch (_) { offered = { collections: null, web: null, packs: null }; }
    const hasCollections = Array.isArray(offered.collections) && offered.collections.length > 0;
    const hasPacks = Array.isArray(offered.packs) ? offered.packs.length > 0 : !!offered.packs;
    $("src-collections-row").hidden = !hasCollections;
    $("src-packs-row").hidden = !hasPacks;
    packChoice(Array.isArray(offered.packs) ? offered.packs : []);
    $("src-web-row").hidden = !offered.web;
    $("search-switch").hidden = !(hasCollections || hasPacks || offered.web);
    if ($("search-switch").hidden) $("search-on").checked = false;
    $("search-sources").hidden = !$("search-on").checked;
  }

  // the pack chooser: "all" or one pack by its title (the choice kept while that pack exists)
  function packChoice(packs) {
    const sel = $("src-pack");
    const keep = sel.value;
    sel.replaceChildren(el("option", "all"));
    sel.firstChild.value = "";
    for (const p of packs) {
      const o = el("option", p.title || p.name);
      o.value = p.name;
      o.title = [p.name, p.language, p.date].filter(Boolean).join(" · ");
      sel.append(o);
    }
    sel.value = packs.some((p) => p.name === keep) ? keep : "";
    sel.hidden = packs.length < 1;
  }

  function tagged(text) {
    if (!Array.isArray(offered.collections) || !text) return false;
    const known = new Set(offered.collections.map((c) => tagKey(c.name)));
    for (const m of text.matchAll(TAG)) if (known.has(tagKey(m[2].replace(/[.-]+$/, "")))) return true;
    return false;
  }

  // the cove.search field for a message of `text`, or null (no search)
  function field(text) {
    const on = $("search-on").checked && !$("search-switch").hidden;
    const f = {};
    if (on) {
      if (!$("src-collections-row").hidden && $("src-collections").checked) f.collections = true;
      if (!$("src-web-row").hidden && $("src-web").checked) f.web = true;
      if (!$("src-packs-row").hidden && $("src-packs").checked) f.packs = $("src-pack").value ? [$("src-pack").value] : true;
    }
    if (!f.collections && tagged(text)) f.collections = true;  // #name picks a collection
    return Object.keys(f).length ? f : null;
  }

  function where(s) {
    if (s.kind === "document") return [s.page ? "page " + s.page : "", s.heading || ""].filter(Boolean).join(" · ");
    const parts = [];
    if (s.date) parts.push(String(s.date));
    if (s.kind === "web" && s.url) {
      try { parts.push(new URL(s.url, location.href).host); } catch (_) { /* not a URL */ }
    } else if (s.pack) parts.push(String(s.pack));
    return parts.join(" · ");
  }

  // the passage with its snippet marked (whitespace-insensitive match)
  function showPassage(s) {
    $("passage-title").textContent = "[" + s.index + "] " + s.title;
    $("passage-where").textContent = where(s);
    const box = $("passage-text");
    box.textContent = "";
    const text = s.text || s.snippet || "";
    const snippet = (s.snippet || "").replace(/ …$/, "").trim();
    let at = -1, len = 0;
    if (snippet) {
      const esc = snippet.split(/\s+/).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("\\s+");
      const m = new RegExp(esc).exec(text);
      if (m) { at = m.index; len = m[0].length; }
    }
    if (at < 0) box.append(text);
    else box.append(text.slice(0, at), el("mark", text.slice(at, at + len)), text.slice(at + len));
    $("passage-dialog").showModal();
    const mark = box.querySelector("mark");
    if (mark) mark.scrollIntoView({ block: "center" });
  }

  function card(s) {
    // a web result or a pack article opens its page (http(s), or Cove's own /knowledge/...)
    const opensUrl = s.kind !== "document" && typeof s.url === "string" && /^(https?:\/\/|\/[^/])/i.test(s.url);
    const c = el(opensUrl ? "a" : "button", null, "source-card");
    if (opensUrl) { c.href = s.url; c.target = "_blank"; c.rel = "noopener noreferrer"; }
    else { c.type = "button"; c.addEventListener("click", () => showPassage(s)); }
    c.dataset.index = String(s.index);
    c.dataset.kind = s.kind;
    const head = el("span", null, "source-head");
    head.append(el("span", "[" + s.index + "]", "source-num"), el("span", s.title, "source-title"));
    c.append(head);
    const w = where(s);
    if (w) c.append(el("span", w, "source-where"));
    c.append(el("span", s.snippet, "source-snippet"));
    return c;
  }

  // [n] markers in the rendered answer: a valid one opens its source, an invalid one is
  // struck through with a note (the answer's text stays as the model wrote it)
  function markCitations(body, count, cards) {
    const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
    const nodes = [];
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.parentElement.closest("pre, code") && /\[\d{1,3}(\s*,\s*\d{1,3})*\]/.test(n.data)) nodes.push(n);
    }
    for (const n of nodes) {
      const frag = document.createDocumentFragment();
      let last = 0;
      for (const m of n.data.matchAll(/\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g)) {
        frag.append(n.data.slice(last, m.index));
        const nums = m[1].split(",").map((x) => parseInt(x, 10));
        const ok = nums.every((x) => x >= 1 && x <= count);
        const mark = el(ok ? "button" : "span", m[0], ok ? "cite" : "cite invalid");
        if (ok) { mark.type = "button"; mark.addEventListener("click", () => cards[nums[0] - 1].click()); }
        else mark.title = "No such source: the model made this citation up";
        frag.append(mark);
        last = m.index + m[0].length;
      }
      frag.append(n.data.slice(last));
      n.replaceWith(frag);
    }
  }

  // cards (and warnings) under an answer; `el` is the message element, `m` the message
  function render(msgEl, m) {
    const old = msgEl.querySelector(".sources");
    if (old) old.remove();
    const search = m.cove && m.cove.search;
    if (!search) return;
    const box = el("div", null, "sources");
    for (const w of search.warnings || []) box.append(el("p", w, "source-warning"));
    const cards = (search.sources || []).map(card);
    if (cards.length) {
      box.append(el("div", "Sources", "sources-label"));
      const list = el("div", null, "source-cards");
      list.append(...cards);
      box.append(list);
    } else if (!(search.warnings || []).length) box.append(el("p", "No sources matched.", "source-warning"));
    msgEl.querySelector(".body").after(box);
    markCitations(msgEl.querySelector(".body"), cards.length, cards);
  }

  function wire() {
    $("search-on").addEventListener("change", () => { $("search-sources").hidden = !$("search-on").checked; });
    $("passage-close").addEventListener("click", () => $("passage-dialog").close());
  }

  window.coveSources = { refresh, field, render };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();
