// The factory line's screen: tiles per port, counts, recent boards; live from the run's events.
import { el, formatTime } from "./common.js";

let snapshot = null;
let received = 0;

function elapsedText(tile) {
  if (tile.elapsed === null || tile.elapsed === undefined) return "";
  const seconds = Math.floor(tile.elapsed + (Date.now() - received) / 1000);
  return seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`;
}

function progress(tile) {
  if (!tile.stage_number || tile.result) return null;
  const share = (tile.stage_number - 1 + (tile.percent ?? 0) / 100) / tile.stages;
  return el("progress", {
    max: 100, value: Math.round(share * 100),
    "aria-label": `Stage ${tile.stage_number} of ${tile.stages}${tile.percent !== null ? `, ${tile.percent}% of this stage` : ""}`,
  });
}

function tileElement(tile) {
  const label = tile.result === "done" ? "done ✓" : tile.result === "failed" ? "failed ✗" : tile.state;
  return el("li", { class: "tile", "data-port": tile.port, "data-state": tile.state, "data-result": tile.result || "" },
    el("div", { class: "port" }, tile.port),
    el("div", { class: "state" }, label),
    el("div", { class: "device" }, tile.device || (tile.state === "waiting" ? "plug in a board" : "—")),
    tile.board ? el("div", { class: "board" }, `board ${tile.board}`) : null,
    progress(tile),
    el("div", { class: "elapsed" }, elapsedText(tile)),
    tile.note ? el("div", { class: "note" }, tile.note) : null,
    tile.error ? el("p", { class: "error" }, tile.error) : null,
    tile.fix ? el("p", { class: "fix" }, `To fix: ${tile.fix}`) : null,
  );
}

function render() {
  if (!snapshot) return;
  document.getElementById("title").textContent = snapshot.title;
  document.title = `${snapshot.counts.done} done · factory line`;
  for (const [name, value] of Object.entries(snapshot.counts)) {
    document.querySelector(`[data-count="${name}"]`).textContent = String(name === "per_hour" ? Math.round(value) : value);
  }
  document.getElementById("tiles").replaceChildren(...snapshot.tiles.map(tileElement));
  document.getElementById("no-ports").hidden = snapshot.tiles.length > 0;
  const rows = snapshot.recent.map((r) => el("tr", { "data-device": r.device || "" },
    el("td", {}, r.time ? formatTime(r.time) : r.when || "—"),
    el("td", {}, r.device || "—"),
    el("td", { class: r.result }, r.result),
    el("td", {}, r.port || "—"),
    el("td", {}, r.board || "—"),
  ));
  document.querySelector("#recent tbody").replaceChildren(...rows);
}

const live = document.getElementById("live");
const source = new EventSource("stream");
source.addEventListener("open", () => { live.dataset.state = "live"; live.textContent = "Live"; });
source.addEventListener("error", () => { live.dataset.state = "down"; live.textContent = "Reconnecting…"; });
source.addEventListener("line", (event) => {
  snapshot = JSON.parse(event.data);
  received = Date.now();
  render();
});
setInterval(() => {
  for (const tile of snapshot ? snapshot.tiles : []) {
    const node = document.querySelector(`.tile[data-port="${CSS.escape(tile.port)}"] .elapsed`);
    if (node) node.textContent = elapsedText(tile);
  }
}, 1000);
