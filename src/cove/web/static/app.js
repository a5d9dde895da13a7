/* Cove web app. Talks to the /web routes; a guest conversation lives only in this tab's memory.
   Every text goes into the page with textContent, except model output, which is rendered by
   coveRender (markdown -> DOMPurify). */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const state = {
    user: null, csrf: null, guestAllowed: false, signup: "open",
    conversationId: null, messages: [], busy: false, abort: null, models: [],
  };

  // ---------- HTTP ----------
  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
    const r = await fetch(path, { method, headers, credentials: "same-origin",
                                  body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((data.error && data.error.message) || ("HTTP " + r.status));
    return data;
  }

  async function stream(path, body, onEvent, signal) {
    const headers = { "Content-Type": "application/json", "Accept": "text/event-stream" };
    if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
    const r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body), signal,
                                  credentials: "same-origin" });
    if (!r.ok) {
      const data = await r.json().catch(() => ({}));
      throw new Error((data.error && data.error.message) || ("HTTP " + r.status));
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (block.startsWith("data: ")) onEvent(JSON.parse(block.slice(6)));
      }
    }
  }

  function showError(msg) {
    const el = $("error");
    el.textContent = msg || "";
    el.hidden = !msg;
  }

  // ---------- rendering ----------
  function copyText(text, button) {
    const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1200); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
    } else fallbackCopy(text, done);
  }
  function fallbackCopy(text, done) {
    const t = document.createElement("textarea");
    t.value = text; document.body.appendChild(t); t.select();
    try { document.execCommand("copy"); done(); } finally { t.remove(); }
  }

  // Icons are inline SVG (no emoji or symbol glyphs: offline systems may lack the fonts).
  const ICONS = {
    rename: ["M4 20h4L19 9l-4-4L4 16z", "M14 6l4 4"],
    delete: ["M4 7h16", "M9 7V4h6v3", "M6 7l1 13h10l1-13", "M10 11v6", "M14 11v6"],
  };
  function iconButton(icon, label, cls, onClick) {
    const b = button("", cls, onClick);
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    for (const d of ICONS[icon]) {
      const path = document.createElementNS(NS, "path"); path.setAttribute("d", d); svg.appendChild(path);
    }
    b.appendChild(svg);
    b.setAttribute("aria-label", label); b.title = label;
    return b;
  }

  function button(label, cls, onClick) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = label; if (cls) b.className = cls;
    b.addEventListener("click", onClick);
    return b;
  }

  function renderAssistantBody(el, m) {
    const think = el.querySelector(".thinking");
    if (m.reasoning) {
      think.hidden = false;
      think.querySelector(".reasoning").innerHTML = coveRender(m.reasoning);
      if (m.content && !think.dataset.touched) think.open = false;
    }
    el.querySelector(".body").innerHTML = coveRender(m.content);
    if (window.coveSources) window.coveSources.render(el, m);
    el.querySelectorAll(".body pre").forEach((pre) => {
      if (pre.querySelector(".copy-code")) return;
      const code = pre.querySelector("code");
      pre.appendChild(button("Copy", "copy-code", (e) => copyText(code ? code.textContent : "", e.target)));
    });
    const note = el.querySelector(".status");
    const notes = { stopped: "Answer stopped.", interrupted: "Answer interrupted (the server stopped); the part above was kept.",
                    error: "The answer failed part-way.", streaming: "" };
    notes.logic = "Logic mode: computed in this tab, not saved in the conversation.";
    note.textContent = notes[m.status] || (m.finish_reason === "length" ? "Answer cut at the length limit." : "");
  }

  function messageElement(m, index) {
    const el = document.createElement("div");
    el.className = "msg " + m.role;
    el.dataset.index = String(index);
    if (m.id) el.dataset.id = String(m.id);
    const role = document.createElement("div");
    role.className = "role";
    role.textContent = m.role === "user" ? "You" : (m.model || "Cove");
    el.appendChild(role);
    if (m.role === "assistant") {
      const think = document.createElement("details");
      think.className = "thinking"; think.hidden = true; think.open = true;
      const summary = document.createElement("summary"); summary.textContent = "Thinking";
      summary.addEventListener("click", () => { think.dataset.touched = "1"; });
      const reasoning = document.createElement("div"); reasoning.className = "reasoning";
      think.append(summary, reasoning);
      el.appendChild(think);
    }
    const body = document.createElement("div");
    body.className = "body";
    el.appendChild(body);
    const status = document.createElement("div");
    status.className = "status";
    el.appendChild(status);
    const actions = document.createElement("div");
    actions.className = "actions";
    actions.appendChild(button("Copy", "copy", (e) => copyText(state.messages[index].content, e.target)));
    if (m.role === "user") actions.appendChild(button("Edit", "edit", () => startEdit(el, index)));
    else if (index === state.messages.length - 1) {
      // regenerating replaces the last answer only, so only the last answer offers it
      actions.appendChild(button("Regenerate", "regenerate", () => regenerate()));
    }
    el.appendChild(actions);
    if (m.role === "assistant") renderAssistantBody(el, m);
    else {
      const urls = (m.images || []).map((i) => (typeof i === "string" ? i : i.url));
      if (urls.length) el.insertBefore(window.coveAttach.thumbs(urls), body);
      body.textContent = m.content;
    }
    return el;
  }

  function renderMessages() {
    const box = $("messages");
    box.textContent = "";
    state.messages.forEach((m, i) => box.appendChild(messageElement(m, i)));
    if (!state.messages.length) {
      const empty = document.createElement("div");
      empty.className = "empty";
      const head = document.createElement("strong");
      head.textContent = state.user ? "New conversation" : "Chat with Cove";
      const hint = document.createElement("span");
      hint.textContent = "Type a message below and press Enter. Everything runs on this machine"
        + (state.user ? "; your conversations are listed in the sidebar." : ".");
      empty.append(head, hint);
      box.appendChild(empty);
    }
    box.scrollTop = box.scrollHeight;
  }

  function startEdit(el, index) {
    if (state.busy) return;
    const body = el.querySelector(".body");
    const area = document.createElement("textarea");
    area.className = "edit-area"; area.value = state.messages[index].content;
    const save = button("Save & send", "primary save-edit", () => {
      const text = area.value.trim();
      if (text) submit(text, index);
    });
    const cancel = button("Cancel", "", () => renderMessages());
    body.textContent = "";
    body.append(area, save, cancel);
    area.focus();
  }

  // ---------- conversations ----------
  let listSeq = 0;
  async function loadConversations() {
    const seq = ++listSeq;
    if (!state.user) { $("conversations").textContent = ""; return; }
    const q = $("search").value.trim();
    const data = await api("GET", "/web/conversations" + (q ? "?q=" + encodeURIComponent(q) : ""));
    if (seq !== listSeq) return;  // a newer refresh is on its way
    const list = $("conversations");
    list.textContent = "";
    for (const c of data.data) {
      const li = document.createElement("li");
      li.className = "conv" + (c.id === state.conversationId ? " active" : "");
      li.dataset.id = c.id;
      const title = document.createElement("span");
      title.className = "title"; title.textContent = c.title;
      title.addEventListener("click", () => openConversation(c.id));
      li.append(title,
        iconButton("rename", "Rename", "rename", async () => {
          const t = prompt("New title", c.title);
          if (t && t.trim()) { await api("PATCH", "/web/conversations/" + c.id, { title: t }); loadConversations(); }
        }),
        iconButton("delete", "Delete", "delete", async () => {
          if (!confirm("Delete this conversation for good?")) return;
          await api("DELETE", "/web/conversations/" + c.id);
          if (state.conversationId === c.id) newChat();
          loadConversations();
        }));
      list.appendChild(li);
    }
  }

  async function openConversation(id) {
    const c = await api("GET", "/web/conversations/" + id);
    state.conversationId = id;
    state.messages = c.messages;
    if (c.model && state.models.some((m) => m.name === c.model)) $("model").value = c.model;
    renderMessages();
    loadConversations();
    closeSidebar();
  }

  function closeSidebar() { document.body.classList.remove("show-sidebar"); }

  function newChat() {
    closeSidebar();
    state.conversationId = null;
    state.messages = [];
    renderMessages();
    loadConversations();
    $("input").focus();
  }

  // ---------- sending ----------
  function setBusy(busy) {
    state.busy = busy;
    $("send").hidden = busy;
    $("stop").hidden = !busy;
  }

  // ---------- logic mode (POST /v1/logic/solve; the result is shown, not stored) ----------
  function logicMarkdown(r) {
    const code = (t) => "`" + String(t).replace(/`/g, "'").replace(/\n/g, " ") + "`";
    const lines = ["**Answer: " + (r.answer === null ? "none" : r.answer) + "** (agreement " +
                   r.votes + "/" + r.k + ")", ""];
    r.samples.forEach((s, i) => {
      lines.push("**Sample " + (i + 1) + "** (seed " + s.seed + "): " + (s.answer === null ? "no answer" : s.answer) +
                 (s.corrected ? " (arithmetic corrected)" : ""), "");
      s.tool_runs.forEach((t) => lines.push("- tool " + code(t.name + " " + t.arguments) + " → " + code(t.result)));
      if (s.tool_runs.length) lines.push("");
      lines.push(s.text.split("\n").map((l) => "> " + l).join("\n"), "");
    });
    return lines.join("\n");
  }

  async function submitLogic(text) {
    const model = $("model").value || null;
    state.messages.push({ role: "user", content: text });
    const answer = { role: "assistant", content: "Solving in logic mode…", reasoning: "", status: "streaming", model };
    state.messages.push(answer);
    renderMessages();
    setBusy(true);
    state.abort = new AbortController();
    try {
      const r = await fetch("/v1/logic/solve", {
        method: "POST", credentials: "same-origin", signal: state.abort.signal,
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify({ question: text, model }) });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error((data.error && data.error.message) || ("HTTP " + r.status));
      answer.model = data.model;
      answer.content = logicMarkdown(data);
      answer.status = "logic";
    } catch (e) {
      if (e.name === "AbortError") { answer.status = "stopped"; answer.content = ""; }
      else { showError(e.message); state.messages.pop(); }
    } finally {
      setBusy(false);
      state.abort = null;
      renderMessages();
    }
  }

  async function submit(text, editIndex, isRegenerate) {
    if (state.busy) return;
    if ($("logic").checked && !isRegenerate && editIndex === undefined) return submitLogic(text);
    showError("");
    const model = $("model").value || null;
    const guest = !state.user;
    const lastUser = [...state.messages].reverse().find((m) => m.role === "user");
    const search = window.coveSources ? window.coveSources.field(isRegenerate ? (lastUser && lastUser.content) : text) : null;
    let body;
    if (isRegenerate) {
      const last = state.messages.length - 1;
      if (last >= 0 && state.messages[last].role === "assistant") state.messages.pop();
      body = { regenerate: true, model };
    } else if (editIndex !== undefined) {
      const editId = state.messages[editIndex].id;
      const images = (state.messages[editIndex].images || []).map((i) => (typeof i === "string" ? i : i.url));
      state.messages = state.messages.slice(0, editIndex);
      state.messages.push({ role: "user", content: text, images });
      body = { content: text, edit_from: editId, model, images };
    } else {
      const images = window.coveAttach.take();
      state.messages.push({ role: "user", content: text, images });
      body = { content: text, model, images };
    }
    const answer = { role: "assistant", content: "", reasoning: "", status: "streaming", model };
    state.messages.push(answer);
    renderMessages();
    const el = $("messages").lastElementChild;
    setBusy(true);
    state.abort = new AbortController();
    let pending = false;
    const redraw = () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; renderAssistantBody(el, answer);
                                    $("messages").scrollTop = $("messages").scrollHeight; });
    };
    let path;
    if (guest) {
      path = "/web/guest/chat";
      body = { model, messages: state.messages.slice(0, -1)
                                   .filter((m) => m.content || (m.images && m.images.length))
                                   .map((m) => ({ role: m.role, content: m.content,
                                                  images: m.images || [] })) };
    } else {
      if (!state.conversationId) {
        const c = await api("POST", "/web/conversations", { model });
        state.conversationId = c.id;
      }
      path = "/web/conversations/" + state.conversationId + "/messages";
    }
    if (search) body.cove = { search };
    try {
      await stream(path, body, (ev) => {
        if (ev.cove) { answer.cove = ev.cove; redraw(); }
        if (ev.type === "start") {
          answer.model = ev.model;
          el.querySelector(".role").textContent = ev.model;
          if (ev.user_message) state.messages[state.messages.length - 2] = ev.user_message;
          if (ev.assistant_message_id) answer.id = ev.assistant_message_id;
          if (ev.conversation) loadConversations();
        } else if (ev.type === "delta") {
          answer[ev.kind === "reasoning" ? "reasoning" : "content"] += ev.text;
          redraw();
        } else if (ev.type === "done") {
          answer.status = "complete"; answer.finish_reason = ev.finish_reason;
        } else if (ev.type === "error") {
          answer.status = "error";
          showError(ev.error.message);
        }
      }, state.abort.signal);
    } catch (e) {
      if (e.name === "AbortError") answer.status = "stopped";
      else { answer.status = "error"; showError(e.message); if (!answer.content) state.messages.pop(); }
    } finally {
      setBusy(false);
      state.abort = null;
      renderMessages();
      if (!guest) loadConversations();
    }
  }

  function regenerate() {
    if (!state.messages.some((m) => m.role === "user")) return;
    submit(null, undefined, true);
  }

  // ---------- account ----------
  async function refreshSession() {
    const s = await api("GET", "/web/session");
    state.user = s.user; state.csrf = s.csrf; state.guestAllowed = s.guest; state.signup = s.signup;
    $("who").textContent = s.user ? s.user.email : "Guest";
    $("guest-banner").hidden = !!s.user;
    $("open-settings").hidden = !s.user;
    $("open-auth").hidden = !!s.user;
    $("sidebar").classList.toggle("guest", !s.user);
    $("auth-invite-row").hidden = s.signup !== "invite" || s.first_account;
    $("signup").hidden = s.signup === "closed" && !s.first_account;
    // the primary button is the action the note asks for: create the first account, else sign in
    $("login").hidden = !!s.first_account;
    $("signup").classList.toggle("primary", !!s.first_account);
    $("login").classList.toggle("primary", !s.first_account);
    $("auth-note").textContent = s.first_account
      ? "Create the first account: it becomes the administrator."
      : (s.guest ? "Sign in to keep your conversations, or close this to chat as a guest." : "Sign in to chat.");
    $("auth-close").hidden = !s.guest && !s.user;
    if (window.coveSources) window.coveSources.refresh();
    if (!s.user && !s.guest) openAuth();
    return s;
  }

  async function authenticate(kind) {
    const err = $("auth-error");
    err.hidden = true;
    const body = { email: $("auth-email").value, password: $("auth-password").value };
    if (kind === "signup" && $("auth-invite").value) body.invite = $("auth-invite").value;
    try {
      await api("POST", "/web/" + kind, body);
      $("auth-password").value = "";
      $("auth-dialog").close();
      await refreshSession();
      newChat();
    } catch (e) {
      err.textContent = e.message; err.hidden = false;
    }
  }

  function openAuth() {
    closeSidebar();
    $("auth-error").hidden = true;
    // signing in starts a new conversation: say so while a guest chat is on screen
    $("auth-carry").hidden = !!state.user || !state.messages.length;
    if (!$("auth-dialog").open) $("auth-dialog").showModal();
  }

  async function openSettings() {
    closeSidebar();
    $("new-key").textContent = ""; $("new-key").hidden = true;  // a key is shown once only
    $("invite-code").textContent = "";
    $("settings-who").textContent = "Signed in as " + state.user.email + " (" + state.user.role + ")";
    $("settings-error").hidden = true;
    await loadKeys();
    $("admin").hidden = state.user.role !== "admin";
    if (state.user.role === "admin") await loadUsers();
    $("settings-dialog").showModal();
  }

  async function loadKeys() {
    const ul = $("keys"); ul.textContent = "";
    for (const k of (await api("GET", "/web/keys")).data) {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = (k.name || "key") + " — " + k.prefix + "…";
      li.append(label, button("Revoke", "danger", async () => { await api("DELETE", "/web/keys/" + k.id); loadKeys(); }));
      ul.appendChild(li);
    }
  }

  async function loadUsers() {
    const ul = $("users"); ul.textContent = "";
    for (const u of (await api("GET", "/web/admin/users")).data) {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = u.email + " — " + u.role + (u.disabled ? " (disabled)" : "");
      li.appendChild(label);
      if (u.id !== state.user.id) {
        li.append(
          button(u.role === "admin" ? "Make user" : "Make admin", "", () => adminChange(u.id, { role: u.role === "admin" ? "user" : "admin" })),
          button(u.disabled ? "Enable" : "Disable", "", () => adminChange(u.id, { disabled: !u.disabled })),
          button("Delete", "danger delete-user", () => adminDelete(u)));
      }
      ul.appendChild(li);
    }
  }

  async function adminChange(id, change) {
    try { await api("PATCH", "/web/admin/users/" + id, change); } catch (e) { settingsError(e); }
    loadUsers();
  }

  async function adminDelete(u) {
    if (!confirm("Delete the account " + u.email + " and all its conversations for good?")) return;
    try { await api("DELETE", "/web/admin/users/" + u.id); } catch (e) { settingsError(e); }
    loadUsers();
  }

  function settingsError(e) { $("settings-error").textContent = e.message; $("settings-error").hidden = false; }

  // ---------- theme and models ----------
  function applyTheme(theme) {
    document.documentElement.dataset.theme = theme;
    $("hl-dark").disabled = theme !== "dark";
    $("hl-light").disabled = theme === "dark";
  }

  async function loadModels() {
    const data = await api("GET", "/web/models");
    state.models = data.data;
    const sel = $("model"); sel.textContent = "";
    for (const m of data.data) {
      const o = document.createElement("option");
      o.value = m.name; o.textContent = m.name; o.title = m.description;
      sel.appendChild(o);
    }
    const saved = localStorage.getItem("cove.model");
    sel.value = data.data.some((m) => m.name === saved) ? saved : data.default;
    if (!sel.value && data.data.length) sel.value = data.data[0].name;
  }

  // ---------- wiring ----------
  function wire() {
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = $("input").value.trim();
      if ((!text && !window.coveAttach.count()) || state.busy) return;
      $("input").value = "";
      submit(text);
    });
    $("input").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
    });
    $("stop").addEventListener("click", () => { if (state.abort) state.abort.abort(); });
    $("new-chat").addEventListener("click", newChat);
    let searchTimer;
    $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(loadConversations, 200); });
    $("toggle-sidebar").addEventListener("click", () => document.body.classList.toggle("show-sidebar"));
    $("close-sidebar").addEventListener("click", closeSidebar);
    $("backdrop").addEventListener("click", closeSidebar);
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeSidebar(); });
    $("model").addEventListener("change", () => localStorage.setItem("cove.model", $("model").value));
    $("theme").addEventListener("click", () => {
      const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      localStorage.setItem("cove.theme", next); applyTheme(next);
    });
    $("open-auth").addEventListener("click", openAuth);
    $("auth-close").addEventListener("click", () => $("auth-dialog").close());
    $("login").addEventListener("click", () => authenticate("login"));
    $("signup").addEventListener("click", () => authenticate("signup"));
    $("open-settings").addEventListener("click", () => openSettings().catch(settingsError));
    $("settings-close").addEventListener("click", () => $("settings-dialog").close());
    $("settings-dialog").addEventListener("close", () => { if (window.coveSources) window.coveSources.refresh(); });
    $("settings-dialog").addEventListener("close", () => { $("new-key").textContent = ""; $("new-key").hidden = true; });
    $("create-key").addEventListener("click", async () => {
      const k = await api("POST", "/web/keys", { name: $("key-name").value });
      $("new-key").textContent = "New key (copy it now, it is not shown again): " + k.key;
      $("new-key").hidden = false; $("key-name").value = "";
      loadKeys();
    });
    $("delete-all").addEventListener("click", async () => {
      if (!confirm("Delete ALL your conversations for good?")) return;
      await api("DELETE", "/web/conversations"); newChat();
    });
    $("delete-account").addEventListener("click", async () => {
      if (!confirm("Delete your account and all its data for good?")) return;
      try {
        await api("DELETE", "/web/account", { password: $("delete-password").value });
        $("settings-dialog").close(); await refreshSession(); newChat();
      } catch (e) { settingsError(e); }
    });
    $("create-invite").addEventListener("click", async () => {
      $("invite-code").textContent = (await api("POST", "/web/admin/invites")).code;
    });
    $("logout").addEventListener("click", async () => {
      await api("POST", "/web/logout"); $("settings-dialog").close();
      await refreshSession(); newChat();
    });
  }

  async function main() {
    applyTheme(localStorage.getItem("cove.theme")
      || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
    wire();
    try {
      await Promise.all([refreshSession(), loadModels()]);
      newChat();
      document.body.dataset.ready = "1";
    } catch (e) { showError(e.message); }
  }
  main();
})();
