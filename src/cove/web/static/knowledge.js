/* Cove web app, Knowledge (the search feature): your document collections in the Settings
   dialog. Create a collection, drop or pick files (each uploads on its own, with its progress
   and its result), delete documents and collections, and try a search. Talks to
   /web/knowledge; every text goes into the page with textContent. A native ES module. */
const $ = (id) => document.getElementById(id);
let csrf = null;
let current = null; // the open collection's id

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, { method, headers, credentials: "same-origin",
                                body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((data.error && data.error.message) || ("HTTP " + r.status));
  return data;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function button(text, onClick, cls) {
  const b = el("button", text, cls);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

function error(msg) {
  const e = $("kb-error");
  e.textContent = msg || "";
  e.hidden = !msg;
}

async function refresh() {
  error("");
  const session = await api("GET", "/web/session").catch(() => ({}));
  csrf = session.csrf || null;
  const list = $("kb-collections");
  list.replaceChildren();
  const { collections } = await api("GET", "/web/knowledge/collections");
  for (const c of collections) {
    const li = el("li");
    li.dataset.id = c.id;
    const open = button(`${c.name} (${c.documents})`, () => openCollection(c.id), "link");
    li.append(open, button("Delete", async () => {
      if (!confirm(`Delete the collection “${c.name}” and its documents?`)) return;
      await api("DELETE", `/web/knowledge/collections/${c.id}`).catch((e) => error(e.message));
      if (current === c.id) closeCollection();
      refresh();
    }, "danger"));
    list.append(li);
  }
  if (current !== null && collections.some((c) => c.id === current)) openCollection(current);
}

function closeCollection() {
  current = null;
  $("kb-open").hidden = true;
}

async function openCollection(id) {
  current = id;
  const c = await api("GET", `/web/knowledge/collections/${id}`).catch((e) => error(e.message));
  if (!c) return;
  $("kb-open").hidden = false;
  $("kb-open-name").textContent = c.name;
  const docs = $("kb-documents");
  docs.replaceChildren();
  for (const d of c.items) {
    const li = el("li");
    const pages = d.pages ? `, ${d.pages} pages` : "";
    li.append(el("span", `${d.filename} (${d.kind}${pages})`));
    for (const note of d.notes) li.append(el("small", " " + note, "note"));
    li.append(button("Remove", async () => {
      await api("DELETE", `/web/knowledge/documents/${d.id}`).catch((e) => error(e.message));
      refresh();
    }));
    docs.append(li);
  }
}

function upload(file) {
  const row = el("li");
  const name = el("span", file.name);
  const status = el("span", " waiting", "kb-status");
  const bar = el("progress");
  bar.max = 100;
  bar.value = 0;
  row.append(name, bar, status);
  $("kb-uploads").append(row);
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/web/knowledge/collections/${current}/documents`);
    if (csrf) xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
      status.textContent = e.loaded < e.total ? " uploading" : " reading";
    };
    xhr.onload = () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      bar.value = 100;
      if (xhr.status === 201) {
        status.textContent = ` added, ${data.chunks} passages`;
        row.dataset.state = "added";
      } else if (xhr.status === 409 && data.error && data.error.code === "duplicate_document") {
        status.textContent = " already in this collection (not added again)";
        row.dataset.state = "unchanged";
      } else {
        status.textContent = " " + ((data.error && data.error.message) || ("HTTP " + xhr.status));
        row.dataset.state = "failed";
      }
      resolve();
    };
    xhr.onerror = () => { status.textContent = " network error"; row.dataset.state = "failed"; resolve(); };
    const form = new FormData();
    form.append("file", file);
    xhr.send(form);
  });
}

async function uploadAll(files) {
  if (current === null) return;
  for (const f of files) await upload(f); // one at a time: each is its own all-or-nothing ingest
  refresh();
}

async function search(event) {
  event.preventDefault();
  const query = $("kb-query").value.trim();
  const out = $("kb-results");
  out.replaceChildren();
  if (!query || current === null) return;
  const r = await api("POST", "/web/knowledge/search", { query, collections: [current] })
    .catch((e) => error(e.message));
  if (!r) return;
  if (!r.results.length) out.append(el("li", "No matches."));
  for (const h of r.results) {
    const li = el("li", "", "kb-result");
    const where = h.document + (h.page ? `, page ${h.page}` : "") + (h.heading ? ` — ${h.heading}` : "");
    li.append(el("strong", where), el("p", h.snippet));
    out.append(li);
  }
}

function init() {
  $("open-settings").addEventListener("click", () => refresh().catch((e) => error(e.message)));
  $("kb-create").addEventListener("click", async () => {
    const name = $("kb-name").value.trim();
    if (!name) return;
    const c = await api("POST", "/web/knowledge/collections", { name }).catch((e) => error(e.message));
    if (!c) return;
    $("kb-name").value = "";
    current = c.id;
    refresh();
  });
  $("kb-files").addEventListener("change", (e) => { uploadAll([...e.target.files]); e.target.value = ""; });
  const drop = $("kb-drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    uploadAll([...e.dataTransfer.files]);
  });
  $("kb-search").addEventListener("submit", search);
}

init();
