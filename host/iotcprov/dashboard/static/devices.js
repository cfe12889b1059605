// The devices list: every registered device, filtered and searched in the browser, one page of
// PAGE_SIZE rows in the DOM at a time (a thousand devices stay quick), updated live.
import { ago, badge, el, enrollmentText, follow, getJson, setupPage } from "./common.js";

const PAGE_SIZE = 100;
const devices = new Map(); // id -> row
let page = 0;
let pending = false;

const tbody = document.querySelector("#devices tbody");
const search = document.getElementById("search");
const connection = document.getElementById("connection");

function matches(row, words, wanted) {
  if (wanted === "connected" && !row.connected) return false;
  if (wanted === "disconnected" && row.connected) return false;
  if (!words.length) return true;
  const text = `${row.id} ${row.model_id || ""} ${enrollmentText(row.enrollment)} ${row.status || ""}`.toLowerCase();
  return words.every((word) => text.includes(word));
}

function rowElement(row) {
  return el(
    "tr",
    { "data-device": row.id },
    el("td", {}, el("a", { href: `device?id=${encodeURIComponent(row.id)}` }, row.id)),
    el("td", {}, enrollmentText(row.enrollment)),
    el("td", {}, row.status === "assigned" ? badge("assigned", "ok") : badge(row.status || "—", "warn")),
    el("td", {}, row.connected ? badge("connected", "ok") : badge("not connected", "off")),
    el("td", { title: row.last_seen ? new Date(row.last_seen * 1000).toString() : "" }, ago(row.last_seen)),
    el("td", {}, el("code", {}, row.model_id || "—")),
    el("td", { class: "num" }, String(row.messages ?? 0)),
  );
}

function render() {
  pending = false;
  const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
  const wanted = connection.value;
  const shown = [...devices.values()].filter((row) => matches(row, words, wanted));
  shown.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
  page = Math.min(page, pages - 1);
  const slice = shown.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
  const fragment = document.createDocumentFragment();
  for (const row of slice) fragment.append(rowElement(row));
  tbody.replaceChildren(fragment);
  const connected = [...devices.values()].filter((row) => row.connected).length;
  document.getElementById("counts").textContent =
    `${devices.size} devices, ${connected} connected` + (shown.length !== devices.size ? `; ${shown.length} match` : "");
  document.getElementById("empty").hidden = devices.size > 0;
  document.getElementById("page").textContent = shown.length
    ? `Devices ${page * PAGE_SIZE + 1}–${page * PAGE_SIZE + slice.length} of ${shown.length} (page ${page + 1} of ${pages})`
    : "";
  document.getElementById("prev").disabled = page === 0;
  document.getElementById("next").disabled = page >= pages - 1;
}

function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(render);
}

async function load() {
  const data = await getJson("data/devices");
  devices.clear();
  for (const row of data.devices) devices.set(row.id, row);
  render();
  return data.event_id;
}

setupPage();
search.addEventListener("input", () => { page = 0; schedule(); });
connection.addEventListener("change", () => { page = 0; schedule(); });
document.getElementById("prev").addEventListener("click", () => { page = Math.max(0, page - 1); schedule(); });
document.getElementById("next").addEventListener("click", () => { page += 1; schedule(); });
setInterval(schedule, 5000); // "last seen" ages

const after = await load();
follow({ view: "devices", after }, {
  devices: (data) => {
    for (const row of data.rows) devices.set(row.id, row);
    schedule();
  },
});
