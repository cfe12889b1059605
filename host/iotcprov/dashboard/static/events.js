// Every event the emulator logs (connections, refusals with reasons, registrations, admin
// actions), newest first, filtered in the browser, live.
import { el, follow, formatTime, getJson, setupPage } from "./common.js";

const SHOWN = 500;
const events = [];
let lastEvent = 0;
let pending = false;
const filter = document.getElementById("filter");

function render() {
  pending = false;
  const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = events.filter((e) => {
    const text = `${e.kind} ${e.device || ""} ${e.reason || ""} ${e.endpoint || ""}`.toLowerCase();
    return words.every((word) => text.includes(word));
  });
  const rows = shown.slice(-SHOWN).reverse().map((e) => el("tr", { "data-kind": e.kind },
    el("td", {}, formatTime(e.time)),
    el("td", {}, e.endpoint || ""),
    el("td", {}, e.kind),
    el("td", {}, e.device ? el("a", { href: `device?id=${encodeURIComponent(e.device)}` }, e.device) : ""),
    el("td", {}, e.reason || ""),
  ));
  document.querySelector("#log tbody").replaceChildren(...rows);
  document.getElementById("counts").textContent = `${events.length} events` + (words.length ? `, ${shown.length} match` : "");
}

function add(list) {
  for (const e of list) {
    if (e.id <= lastEvent) continue;
    lastEvent = e.id;
    events.push(e);
  }
  if (events.length > 5000) events.splice(0, events.length - 5000);
  if (!pending) { pending = true; requestAnimationFrame(render); }
}

setupPage();
filter.addEventListener("input", render);
const data = await getJson("data/events");
add(data.events);
lastEvent = Math.max(lastEvent, data.event_id);
follow(() => ({ view: "events", after: lastEvent }), { log: (message) => add(message.events) });
