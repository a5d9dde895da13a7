/* Small helpers the feature pages (Ideas, Arena) share: elements built with textContent only,
   JSON calls in the API's error shape, the model list, and a reader of named server-sent
   events (`event:` + `data:` blocks) from a fetch response. A native ES module. */
export const $ = (id) => document.getElementById(id);

export function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

export function button(text, onClick, cls) {
  const b = el("button", text, cls);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

export function errorOf(data, status) {
  return (data && data.error && data.error.message) || ("HTTP " + status);
}

export async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, credentials: "same-origin",
                                body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(errorOf(data, r.status));
  return data;
}

export async function fillModels(select) {
  const { data, default: dflt } = await api("GET", "/web/models");
  for (const m of data) {
    const o = el("option", m.name);
    o.value = m.name;
    if (m.name === dflt) o.selected = true;
    select.append(o);
  }
  return data.map((m) => m.name);
}

/* POST `body` to `path` and call onEvent(obj) for every event of the stream; an HTTP error
   (before any event) or an `error` event throws with its message. */
export async function streamEvents(path, body, onEvent, signal) {
  const r = await fetch(path, { method: "POST", credentials: "same-origin", signal,
    headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
    body: JSON.stringify(body) });
  if (!r.ok) throw new Error(errorOf(await r.json().catch(() => ({})), r.status));
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const line = block.split("\n").find((l) => l.startsWith("data: "));
      if (!line) continue;
      const obj = JSON.parse(line.slice(6));
      if (obj.type === "error") throw new Error(errorOf(obj, 500));
      onEvent(obj);
    }
  }
}

/* The theme the chat page chose (localStorage "cove.theme"), applied to this page. */
export function applyTheme() {
  const theme = localStorage.getItem("cove.theme");
  if (theme) document.documentElement.dataset.theme = theme;
}
