// Fault injection (docs/emulator.md, Faults): the active faults, and for operators a form to add
// one (its parameters follow the kind chosen) and buttons to clear them.
import { el, follow, formatTime, getJson, operate, setupPage } from "./common.js";

let kinds = {};
const kindSelect = document.getElementById("kind");

function showParameters() {
  const spec = kinds[kindSelect.value];
  const holder = document.getElementById("parameters");
  holder.replaceChildren(...(spec ? spec.parameters : []).map((name) =>
    el("label", {}, name.replace(/_/g, " "), el("input", { name, type: "number", step: "any", required: true }))));
}

async function clear(id) {
  const answer = await operate("clear-faults", id === undefined ? {} : { id });
  document.getElementById("fault-answer").replaceChildren(answer.ok
    ? el("p", {}, `Cleared ${answer.body.cleared}.`)
    : el("p", { class: "error" }, `Refused (${answer.status}): ${answer.body.error}`));
  refresh();
}

async function refresh() {
  const data = await getJson("data/faults");
  if (!Object.keys(kinds).length) {
    kinds = data.kinds;
    kindSelect.replaceChildren(...Object.keys(kinds).map((kind) => el("option", { value: kind }, kind)));
    showParameters();
  }
  const rows = data.faults.map((f) => el("tr", { "data-fault": f.id },
    el("td", { class: "num" }, String(f.id)),
    el("td", {}, f.kind),
    el("td", {}, f.endpoint || "any"),
    el("td", {}, f.device || "any"),
    el("td", {}, f.remaining === null ? "until cleared" : String(f.remaining)),
    el("td", {}, f.until ? formatTime(f.until) : "—"),
    el("td", {}, el("code", {}, JSON.stringify(f.params))),
    el("td", { class: "operator-only" }, el("button", { type: "button", class: "secondary", "aria-label": `Clear fault ${f.id}`, onclick: () => clear(f.id) }, "Clear")),
  ));
  document.querySelector("#faults tbody").replaceChildren(...rows);
  document.getElementById("no-faults").hidden = rows.length > 0;
}

setupPage();
kindSelect.addEventListener("change", showParameters);
document.getElementById("clear-all").addEventListener("click", () => clear());
document.getElementById("fault-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(event.target);
  const body = { kind: data.get("kind") };
  for (const [name, value] of data.entries()) {
    if (name === "kind" || value === "") continue;
    body[name] = name === "endpoint" || name === "device" ? value : Number(value);
  }
  const answer = await operate("fault", body);
  document.getElementById("fault-answer").replaceChildren(answer.ok
    ? el("p", {}, `Added fault ${answer.body.id} (${answer.body.kind}).`)
    : el("p", { class: "error" }, `Refused (${answer.status}): ${answer.body.error}`));
  refresh();
});
await refresh();
let timer = null;
follow({ view: "events" }, { log: () => { clearTimeout(timer); timer = setTimeout(refresh, 300); } });
setInterval(refresh, 5000); // faults expire by time, too
