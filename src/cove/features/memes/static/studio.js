// Meme studio: pick a template or an image, get caption ideas, edit in place, download;
// a signed-in user's templates and gallery; explain a meme. Talks to /v1/memes (session cookie).
const $ = (id) => document.getElementById(id);
const state = { session: null, templates: [], pick: null, boxes: [] };

function showError(message) {
  const el = $("error");
  el.textContent = message || "";
  el.hidden = !message;
}

async function api(path, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (state.session && state.session.csrf) headers["X-CSRF-Token"] = state.session.csrf;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(opts.json);
  }
  const r = await fetch(path, { ...opts, headers, credentials: "same-origin" });
  if (!r.ok) {
    let message = `${r.status} ${r.statusText}`;
    try { message = (await r.json()).error.message || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return r;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function source() {
  const p = state.pick;
  if (!p) throw new Error("pick a template or an image first");
  if (p.kind === "template") return { template: p.id };
  return { image: p.dataUrl, ...(state.boxes.length ? { boxes: state.boxes } : {}) };
}

function boxesOfPick() {
  const p = state.pick;
  if (p.kind === "template") return p.template.boxes.map((b) => b.name);
  return state.boxes.length ? state.boxes.map((b) => b.name) : ["top", "bottom"];
}

async function loadTemplates() {
  const data = (await (await api("/v1/memes/templates")).json()).data;
  state.templates = data;
  const list = $("templates");
  list.replaceChildren();
  for (const t of data) {
    const b = el("button", { type: "button", "aria-pressed": "false", "data-id": t.id },
      el("img", { src: t.image_url, alt: "" }), el("span", { text: t.name }));
    b.addEventListener("click", () => pickTemplate(t, b));
    const li = el("li", {}, b);
    if (t.source === "user") {
      const rm = el("button", { type: "button", class: "remove", text: "Delete" });
      rm.addEventListener("click", async () => {
        try { await api(`/v1/memes/templates/${t.id}`, { method: "DELETE" }); await loadTemplates(); }
        catch (e) { showError(e.message); }
      });
      li.append(rm);
    }
    list.append(li);
  }
}

function pickTemplate(t, button) {
  for (const b of document.querySelectorAll("#templates button[aria-pressed]")) b.setAttribute("aria-pressed", "false");
  if (button) button.setAttribute("aria-pressed", "true");
  state.pick = { kind: "template", id: t.id, template: t };
  $("placer").hidden = true;
  $("picked").textContent = `Template: ${t.name}`;
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(new Error("cannot read the file"));
    r.readAsDataURL(file);
  });
}

function drawBoxes() {
  const stage = $("placer-stage");
  for (const old of stage.querySelectorAll(".box")) old.remove();
  for (const b of state.boxes) {
    stage.append(el("div", { class: "box", text: b.name, style:
      `left:${b.anchor_x * 100}%;top:${b.anchor_y * 100}%;width:${b.scale_x * 100}%;height:${b.scale_y * 100}%` }));
  }
}

function setupPlacer() {
  const stage = $("placer-stage");
  let start = null;
  const frac = (ev) => {
    const r = $("placer-img").getBoundingClientRect();
    return [Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)),
            Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height))];
  };
  stage.addEventListener("pointerdown", (ev) => { start = frac(ev); ev.preventDefault(); });
  window.addEventListener("pointerup", (ev) => {
    if (!start) return;
    const end = frac(ev);
    const [x0, x1] = [Math.min(start[0], end[0]), Math.max(start[0], end[0])];
    const [y0, y1] = [Math.min(start[1], end[1]), Math.max(start[1], end[1])];
    start = null;
    if (x1 - x0 < 0.03 || y1 - y0 < 0.03 || state.boxes.length >= 8) return;
    const r4 = (v) => Math.round(v * 10000) / 10000;
    state.boxes.push({ name: `box_${state.boxes.length + 1}`, anchor_x: r4(x0), anchor_y: r4(y0),
                       scale_x: r4(x1 - x0), scale_y: r4(y1 - y0) });
    drawBoxes();
  });
  $("clear-boxes").addEventListener("click", () => { state.boxes = []; drawBoxes(); });
  $("own-image").addEventListener("change", async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    showError("");
    const dataUrl = await readAsDataUrl(file);
    state.pick = { kind: "image", dataUrl, file };
    state.boxes = [];
    for (const b of document.querySelectorAll("#templates button[aria-pressed]")) b.setAttribute("aria-pressed", "false");
    $("placer-img").src = dataUrl;
    $("placer").hidden = false;
    drawBoxes();
    $("picked").textContent = `Your image: ${file.name}`;
  });
  $("keep-template").addEventListener("click", async () => {
    const p = state.pick;
    if (!p || p.kind !== "image") return;
    const form = new FormData();
    form.append("file", p.file);
    form.append("name", p.file.name.replace(/\.[^.]+$/, "").slice(0, 100) || "My template");
    if (state.boxes.length) form.append("boxes", JSON.stringify(state.boxes));
    try {
      const t = await (await api("/v1/memes/templates", { method: "POST", body: form })).json();
      await loadTemplates();
      pickTemplate(t, document.querySelector(`#templates button[data-id="${t.id}"]`));
    } catch (e) { showError(e.message); }
  });
}

async function rerender(card, texts, img, link) {
  try {
    const r = await api("/v1/memes", { method: "POST", json: { ...source(), text: texts, format: "png" } });
    const url = URL.createObjectURL(await r.blob());
    if (img.dataset.blob) URL.revokeObjectURL(img.dataset.blob);
    img.dataset.blob = url;
    img.src = url;
    link.href = url;
    card.querySelector(".variant-error").textContent = "";
  } catch (e) { card.querySelector(".variant-error").textContent = e.message; }
}

function variantCard(index, texts, image, error) {
  const img = el("img", { alt: `Variant ${index + 1}` });
  const link = el("a", { class: "button", download: `meme-${index + 1}.png`, text: "Download PNG" });
  const card = el("div", { class: "variant", "data-index": String(index) }, img);
  let timer = null;
  for (const name of boxesOfPick()) {
    const input = el("input", { "data-box": name, "aria-label": `Text: ${name}` });
    input.value = texts[name] || "";
    input.addEventListener("input", () => {
      texts[name] = input.value;
      clearTimeout(timer);
      timer = setTimeout(() => rerender(card, texts, img, link), 300);
    });
    card.append(el("label", { text: name }, input));
  }
  card.append(el("p", { class: "variant-error error" }));
  const actions = el("div", { class: "row" }, link);
  if (state.session && state.session.user) {
    const save = el("button", { type: "button", text: "Save to gallery" });
    save.addEventListener("click", async () => {
      try {
        await api("/v1/memes", { method: "POST", json: { ...source(), text: texts, save: true } });
        save.textContent = "Saved";
        await loadGallery();
      } catch (e) { showError(e.message); }
    });
    actions.append(save);
  }
  card.append(actions);
  if (image) { img.src = image; link.href = image; } else rerender(card, texts, img, link);
  if (error) card.querySelector(".variant-error").textContent = error;
  return card;
}

async function getIdeas(ev) {
  ev.preventDefault();
  showError("");
  try {
    const body = { ...source(), idea: $("idea").value, n: Number($("n").value) };
    $("busy").hidden = false;
    $("get-ideas").disabled = true;
    const got = await (await api("/v1/memes/captions", { method: "POST", json: body })).json();
    $("variants").replaceChildren(...got.variants.map((v) => variantCard(v.index, v.text, v.image, v.error)));
  } catch (e) { showError(e.message); }
  finally { $("busy").hidden = true; $("get-ideas").disabled = false; }
}

function writeOwn() {
  showError("");
  try {
    source();
    const example = state.pick.kind === "template" ? { ...state.pick.template.example } : {};
    $("variants").replaceChildren(variantCard(0, example, null, null));
  } catch (e) { showError(e.message); }
}

async function loadGallery() {
  if (!(state.session && state.session.user)) return;
  $("gallery-section").hidden = false;
  const items = (await (await api("/v1/memes")).json()).data;
  $("gallery").replaceChildren(...items.map((m) => {
    const rm = el("button", { type: "button", text: "Delete" });
    rm.addEventListener("click", async () => {
      try { await api(`/v1/memes/${m.id}`, { method: "DELETE" }); await loadGallery(); }
      catch (e) { showError(e.message); }
    });
    return el("li", { "data-id": String(m.id) }, el("img", { src: m.image_url, alt: "Saved meme" }),
      el("a", { href: m.image_url, download: `meme-${m.id}.${m.format}`, text: "Download" }), rm);
  }));
}

async function explain(ev) {
  const file = ev.target.files[0];
  if (!file) return;
  showError("");
  $("regions").replaceChildren();
  $("vision-note").textContent = "Reading…";
  const out = $("explanation");
  out.textContent = "";
  const form = new FormData();
  form.append("file", file);
  form.append("stream", "true");
  try {
    const r = await api("/v1/memes/explain", { method: "POST", body: form });
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        if (!line.startsWith("data: ")) continue;
        const evt = JSON.parse(line.slice(6));
        if (evt.type === "start") {
          $("vision-note").textContent = (evt.template ? `Template: ${evt.template.name}. ` : "") + evt.vision.note;
          $("regions").replaceChildren(...evt.regions.map((g) =>
            el("li", { text: `${g.box_name || g.position}: ${g.text}` })));
          if (!evt.regions.length) $("regions").append(el("li", { text: "No text found." }));
        } else if (evt.type === "delta" && evt.kind === "content") {
          out.textContent += evt.text;
        } else if (evt.type === "error") {
          showError(evt.error.message);
        }
      }
    }
  } catch (e) { showError(e.message); $("vision-note").textContent = ""; }
  ev.target.value = "";
}

async function main() {
  state.session = await (await api("/web/session")).json();
  const user = state.session.user;
  $("who").textContent = user ? user.email : "Guest: nothing you make here is kept";
  $("keep-template").hidden = !user;
  $("own-note").textContent = user ? "" : "Sign in to keep your own templates and a gallery.";
  setupPlacer();
  $("idea-form").addEventListener("submit", getIdeas);
  $("blank").addEventListener("click", writeOwn);
  $("explain-file").addEventListener("change", explain);
  await loadTemplates();
  const first = state.templates[0];
  if (first) pickTemplate(first, document.querySelector(`#templates button[data-id="${first.id}"]`));
  await loadGallery();
  document.body.dataset.ready = "1";
}

main().catch((e) => showError(e.message));
