/* Cove web app, Arena page: a battle streamed from POST /v1/arena/battles (answers side by
   side as they come), a vote (A, B, …, tie, both bad) that reveals blind names, and the
   leaderboard. Every text goes into the page with textContent. A native ES module. */
import { $, api, applyTheme, button, el, streamEvents } from "/static/kit.js";

let models = [];
let battle = null;

function error(msg) {
  $("error").textContent = msg || "";
  $("error").hidden = !msg;
}

function addPicker(value) {
  if ($("pickers").children.length >= 4) return;
  const sel = el("select");
  sel.className = "contestant";
  sel.setAttribute("aria-label", "Model " + ($("pickers").children.length + 1));
  for (const m of models) {
    const o = el("option", m);
    o.value = m;
    sel.append(o);
  }
  if (value) sel.value = value;
  $("pickers").append(sel);
}

async function loadBoard() {
  const board = await api("GET", "/v1/arena/leaderboard");
  const body = $("leaderboard").querySelector("tbody");
  body.replaceChildren();
  for (const r of board.models) {
    const tr = el("tr");
    for (const v of [r.model, r.rating.toFixed(0), `${r.ci[0].toFixed(0)}–${r.ci[1].toFixed(0)}`,
                     r.battles, r.wins, r.losses, r.ties]) tr.append(el("td", v));
    body.append(tr);
  }
  $("board-note").textContent = `${board.votes} votes. ${board.method}.`;
}

function showVotes(contestants) {
  const bar = $("votes");
  bar.replaceChildren(el("span", "Which is better?"));
  for (const c of contestants) bar.append(button(c.slot, () => vote(c.slot)));
  bar.append(button("Tie", () => vote("tie")), button("Both bad", () => vote("bad")));
  bar.hidden = false;
}

async function vote(winner) {
  error("");
  try {
    const out = await api("POST", `/v1/arena/battles/${battle}/vote`, { winner });
    $("votes").hidden = true;
    for (const c of out.contestants) {
      const head = document.querySelector(`.answer[data-slot="${c.slot}"] h3`);
      if (head) head.textContent = `${c.slot}: ${c.model}`;
    }
    const label = winner === "tie" ? "a tie" : winner === "bad" ? "both bad" : winner;
    $("verdict").textContent = `Your vote: ${label}. ` +
      out.contestants.map((c) => `${c.slot} was ${c.model}`).join(", ") + ".";
    await loadBoard();
  } catch (e) {
    error(e.message);
  }
}

async function run(ev) {
  ev.preventDefault();
  error("");
  $("verdict").textContent = "";
  $("votes").hidden = true;
  const picked = [...document.querySelectorAll(".contestant")].map((s) => s.value);
  const blind = $("blind").checked;
  const texts = {};
  $("answers").replaceChildren();
  $("go").disabled = true;
  try {
    await streamEvents("/v1/arena/battles", { prompt: $("prompt").value, models: picked, blind,
                                              max_tokens: Number($("max-tokens").value) }, (e) => {
      if (e.type === "start") {
        battle = e.battle_id;
        for (const c of e.contestants) {
          const box = el("div", undefined, "answer");
          box.dataset.slot = c.slot;
          box.append(el("h3", c.model ? `${c.slot}: ${c.model}` : c.slot),
                     (texts[c.slot] = el("div", "", "text")));
          $("answers").append(box);
        }
        $("answers").dataset.contestants = JSON.stringify(e.contestants);
      } else if (e.type === "delta" && e.kind === "content") {
        texts[e.slot].textContent += e.text;
      } else if (e.type === "answer") {
        texts[e.slot].parentElement.dataset.done = e.finish_reason;
      } else if (e.type === "done") {
        showVotes(JSON.parse($("answers").dataset.contestants));
      }
    });
  } catch (e) {
    error(e.message);
  } finally {
    $("go").disabled = false;
  }
}

async function init() {
  applyTheme();
  const { data } = await api("GET", "/web/models");
  models = data.map((m) => m.name);
  addPicker(models[0]);
  addPicker(models[1] || models[0]);
  $("add-model").addEventListener("click", () => addPicker());
  $("arena-form").addEventListener("submit", run);
  await loadBoard().catch((e) => error(e.message));
  document.body.dataset.ready = "1";
}

init();
