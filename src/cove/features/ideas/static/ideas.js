/* Cove web app, Ideas page: a brainstorm streamed from POST /v1/ideas (candidates, scores,
   themes), shown ranked within themes; follow-ups (expand, pre-mortem, more like this,
   combine two); a signed-in user's saved boards (open, delete, Markdown download). Every text
   goes into the page with textContent. A native ES module. */
import { $, api, applyTheme, button, el, fillModels, streamEvents } from "/static/kit.js";

let current = null; // the shown result: {goal, constraints, ideas, groups, board_id}
let selected = [];
let controller = null;
let signedIn = false;

function error(msg) {
  $("error").textContent = msg || "";
  $("error").hidden = !msg;
}

function lines(text) {
  return text.split("\n").map((s) => s.trim()).filter(Boolean);
}

function render(result) {
  current = result;
  selected = [];
  const out = $("results");
  out.replaceChildren();
  const ideas = new Map(result.ideas.map((i) => [i.id, i]));
  const groups = result.groups && result.groups.length ? result.groups
    : [{ id: "all", name: "Ideas", ideas: result.ideas.map((i) => i.id) }];
  // themes in the order of their best idea
  const best = (g) => Math.min(...g.ideas.map((id) => (ideas.get(id) || { rank: 1e9 }).rank));
  for (const g of [...groups].sort((a, b) => best(a) - best(b))) {
    const sec = el("section", undefined, "theme");
    sec.dataset.group = g.id;
    sec.append(el("h2", g.name));
    const members = g.ideas.map((id) => ideas.get(id)).filter(Boolean)
      .sort((a, b) => a.rank - b.rank);
    for (const i of members) sec.append(ideaRow(i));
    out.append(sec);
  }
  $("actions-bar").hidden = false;
  $("combine").disabled = true;
  const md = $("markdown");
  md.hidden = !result.board_id;
  if (result.board_id) md.href = `/v1/ideas/boards/${result.board_id}/markdown`;
}

function ideaRow(i) {
  const row = el("div", undefined, "idea");
  row.dataset.id = i.id;
  row.append(el("span", "#" + i.rank, "rank"),
             el("span", i.score === null || i.score === undefined ? "–" : i.score.toFixed(1),
                "score"));
  const body = el("div");
  body.append(el("div", i.title, "title"), el("div", i.pitch, "pitch"),
              el("div", i.why, "why"));
  row.append(body, el("span"), el("span"));
  const actions = el("div", undefined, "actions");
  const pick = el("input");
  pick.type = "checkbox";
  pick.title = "Select to combine";
  pick.addEventListener("change", () => {
    selected = pick.checked ? [...selected, i] : selected.filter((x) => x.id !== i.id);
    $("combine").disabled = selected.length !== 2;
  });
  actions.append(pick,
    button("Expand", () => followUp("expand", [i])),
    button("Pre-mortem", () => followUp("premortem", [i])),
    button("More like this", () => followUp("more", [i])));
  row.append(actions);
  return row;
}

function describe(action, result) {
  if (action === "expand") {
    return [result.summary, ...(result.steps || []).map((s, k) => `${k + 1}. ${s}`),
            result.first_step ? "First step: " + result.first_step : ""].filter(Boolean)
      .join("\n");
  }
  if (action === "premortem") {
    return [result.failure, "Causes:", ...(result.causes || []).map((c) => "- " + c),
            "Prevent it:", ...(result.mitigations || []).map((m) => "- " + m)].join("\n");
  }
  if (action === "combine") return `${result.title || ""}: ${result.pitch || ""}\n${result.why || ""}`;
  return (result.ideas || []).map((x) => `${x.title}: ${x.pitch}`).join("\n")
    + (result.duplicates ? `\n(${result.duplicates} repeat(s) dropped)` : "");
}

async function followUp(action, ideas) {
  error("");
  const box = el("div", `${action}: working…`, "followup");
  box.dataset.action = action;
  $("followups").prepend(box);
  try {
    const body = { action, goal: current.goal, constraints: current.constraints || [],
                   ideas: ideas.map((i) => ({ title: i.title, pitch: i.pitch, why: i.why })),
                   model: $("model").value };
    if (current.board_id) body.board_id = current.board_id;
    const out = await api("POST", "/v1/ideas/followups", body);
    box.textContent = "";
    box.append(el("strong", `${action} — ${ideas.map((i) => i.title).join(" + ")}`),
               el("div", describe(action, out.result)));
  } catch (e) {
    box.remove();
    error(e.message);
  }
}

async function brainstorm(ev) {
  ev.preventDefault();
  error("");
  $("results").replaceChildren();
  $("followups").replaceChildren();
  $("actions-bar").hidden = true;
  const criteria = $("criteria").value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = { goal: $("goal").value, constraints: lines($("constraints").value), criteria,
                 n: Number($("n").value), model: $("model").value, stream: true };
  let seen = 0, dups = 0, scored = 0;
  controller = new AbortController();
  $("go").hidden = true; $("stop").hidden = false;
  $("progress").textContent = "Starting…";
  try {
    await streamEvents("/v1/ideas", body, (e) => {
      if (e.type === "candidate") { seen += 1; if (e.idea.duplicate_of) dups += 1; }
      if (e.type === "score") scored += 1;
      if (e.type === "done") { render(e); $("progress").textContent =
        `${e.ideas.length} ideas in ${e.groups.length} themes (${e.duplicates} duplicates dropped) · ${e.seconds.toFixed(1)} s`;
        if (e.board_id) loadBoards();
        return; }
      $("progress").textContent =
        `${seen - dups}/${body.n} ideas (${dups} duplicates dropped) · ${scored} scored`;
    }, controller.signal);
  } catch (e) {
    if (e.name !== "AbortError") error(e.message);
    else $("progress").textContent = "Stopped.";
  } finally {
    $("go").hidden = false; $("stop").hidden = true;
    controller = null;
  }
}

async function loadBoards() {
  if (!signedIn) return;
  const { boards } = await api("GET", "/v1/ideas/boards");
  const list = $("boards");
  list.replaceChildren();
  for (const b of boards) {
    const li = el("li");
    li.dataset.id = b.id;
    li.append(button(`${b.goal} (${b.ideas})`, async () => {
      const board = await api("GET", `/v1/ideas/boards/${b.id}`);
      render({ ...board, board_id: board.id });
      $("progress").textContent = `Board of ${board.created_at}`;
    }, "link"), " ");
    const md = el("a", "Markdown");
    md.href = `/v1/ideas/boards/${b.id}/markdown`;
    md.setAttribute("download", "");
    li.append(md, " ", button("Delete", async () => {
      await api("DELETE", `/v1/ideas/boards/${b.id}`).catch((e) => error(e.message));
      loadBoards();
    }, "danger"));
    list.append(li);
  }
  $("boards-section").hidden = false;
}

async function init() {
  applyTheme();
  $("ideas-form").addEventListener("submit", brainstorm);
  $("stop").addEventListener("click", () => controller && controller.abort());
  $("combine").addEventListener("click", () => selected.length === 2 &&
    followUp("combine", selected));
  await fillModels($("model")).catch((e) => error(e.message));
  const session = await api("GET", "/web/session").catch(() => ({}));
  signedIn = Boolean(session.user);
  $("saved-note").textContent = signedIn ? "Your boards are saved to your account."
    : "As a guest nothing is saved: sign in on the chat page to keep boards.";
  await loadBoards().catch((e) => error(e.message));
  document.body.dataset.ready = "1";
}

init();
