// One device: facts, a live chart per numeric telemetry field, its last messages, its twin with
// the acknowledgement of each writable property, operator forms, and its event log.
import { LineChart } from "./chart.js";
import { badge, el, enrollmentText, follow, formatDateTime, formatTime, getJson, operate, setupPage } from "./common.js";

const MESSAGES_SHOWN = 20;
const EVENTS_SHOWN = 200;
const deviceId = new URLSearchParams(location.search).get("id") || "";
const charts = new Map(); // field -> LineChart
const messages = [];
const events = [];
let windowSeconds = null;
let lastTelemetry = 0;
let lastEvent = 0;

document.title = `${deviceId} · iotcprov emulator`;
document.getElementById("title").textContent = deviceId || "No device given";

// ---------------------------------------------------------------- facts
function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function fact(name, value) {
  return [el("dt", {}, name), el("dd", {}, value ?? "—")];
}

function showDevice(device) {
  document.getElementById("missing").hidden = Boolean(device);
  for (const section of document.querySelectorAll(".needs-device")) section.hidden = !device;
  if (!device) return;
  const facts = document.getElementById("facts");
  facts.replaceChildren(
    ...fact("Registration", `${device.status || "—"} (${plural(device.registrations, "registration")}, last ${formatDateTime(device.last_registration)})`),
    ...fact("Enrollment", enrollmentText(device.enrollment)),
    ...fact("Connection", device.connected ? badge("connected", "ok") : badge("not connected", "off")),
    ...fact("Hub", device.assigned_hub),
    ...fact("Last connected", formatDateTime(device.last_connected)),
    ...fact("Last disconnected", device.last_disconnected ? `${formatDateTime(device.last_disconnected)}: ${device.disconnect_reason || ""}` : "—"),
    ...fact("Model ID", el("code", {}, device.model_id || "—")),
    ...fact("Messages", `${device.messages} (last ${formatDateTime(device.last_message)})`),
    ...fact("Cloud-to-device queued", String(device.c2d_queued)),
  );
  showTwin(device.twin || { desired: {}, reported: {} });
}

// ---------------------------------------------------------------- twin
function isComponent(value) {
  return value && typeof value === "object" && !Array.isArray(value) && value.__t === "c";
}

/** The writable properties a desired document sets: [component or null, name, value]. */
function desiredItems(desired) {
  const items = [];
  for (const [name, value] of Object.entries(desired)) {
    if (name.startsWith("$")) continue;
    if (isComponent(value)) {
      for (const [inner, innerValue] of Object.entries(value)) {
        if (inner !== "__t" && !inner.startsWith("$")) items.push([name, inner, innerValue]);
      }
    } else {
      items.push([null, name, value]);
    }
  }
  return items;
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function ackState(desiredValue, reported) {
  if (!reported || typeof reported !== "object" || !("ac" in reported)) {
    return badge("waiting for the device", "warn");
  }
  const detail = `ac ${reported.ac}, av ${reported.av}${reported.ad ? `: ${reported.ad}` : ""}`;
  if (reported.ac >= 200 && reported.ac < 300 && same(reported.value, desiredValue)) {
    return el("span", {}, badge("acknowledged", "ok"), ` ${detail}`);
  }
  if (reported.ac >= 300) return el("span", {}, badge("refused", "bad"), ` ${detail}`);
  return el("span", {}, badge("pending", "warn"), ` ${detail}`);
}

function showTwin(twin) {
  document.getElementById("desired").textContent = JSON.stringify(twin.desired, null, 2);
  document.getElementById("reported").textContent = JSON.stringify(twin.reported, null, 2);
  const rows = desiredItems(twin.desired).map(([component, name, value]) => {
    const reported = component ? (twin.reported[component] || {})[name] : twin.reported[name];
    const label = component ? `${component} / ${name}` : name;
    return el(
      "tr",
      { "data-property": label },
      el("th", { scope: "row" }, label),
      el("td", {}, el("code", {}, JSON.stringify(value))),
      el("td", {}, el("code", {}, reported && typeof reported === "object" && "value" in reported ? JSON.stringify(reported.value) : "—")),
      el("td", { class: "ack" }, ackState(value, reported)),
    );
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No desired property set.")));
  document.querySelector("#writable tbody").replaceChildren(...rows);
}

// ---------------------------------------------------------------- telemetry
/** Numeric fields of a message body, nested objects (components) as "component.field". */
function numericFields(body, prefix = "", out = []) {
  if (!body || typeof body !== "object") return out;
  for (const [name, value] of Object.entries(body)) {
    if (typeof value === "number" && Number.isFinite(value)) out.push([prefix + name, value]);
    else if (value && typeof value === "object" && !Array.isArray(value) && !prefix) numericFields(value, `${name}.`, out);
  }
  return out;
}

function chartFor(field) {
  let chart = charts.get(field);
  if (!chart) {
    const id = `chart-${charts.size}`;
    const figure = el(
      "figure",
      { class: "chart", "data-field": field, "data-points": "0" },
      el("figcaption", { id }, el("span", {}, field), el("span", { class: "latest", "aria-hidden": "true" })),
      el("canvas", { "aria-describedby": id }),
    );
    document.getElementById("charts").append(figure);
    document.getElementById("no-numbers").hidden = true;
    chart = new LineChart(figure, field);
    chart.setWindow(windowSeconds);
    charts.set(field, chart);
  }
  return chart;
}

function parseBody(message) {
  if (message.body === null || message.body === undefined) return null;
  try { return JSON.parse(message.body); } catch { return null; }
}

function addTelemetry(list) {
  const series = new Map();
  for (const message of list) {
    if (message.id <= lastTelemetry) continue;
    lastTelemetry = message.id;
    messages.push(message);
    for (const [field, value] of numericFields(parseBody(message))) {
      if (!series.has(field)) series.set(field, []);
      series.get(field).push([message.time, value]);
    }
  }
  for (const [field, points] of series) chartFor(field).add(points);
  if (messages.length > MESSAGES_SHOWN) messages.splice(0, messages.length - MESSAGES_SHOWN);
  const rows = [...messages].reverse().map((m) =>
    el(
      "tr",
      {},
      el("td", {}, formatTime(m.time)),
      el("td", {}, el("code", {}, m.body ?? `(binary, ${m.body_base64 ? m.body_base64.length : 0} base64 characters)`)),
      el("td", {}, el("code", {}, Object.entries(m.properties || {}).map(([k, v]) => `${k}=${v}`).join(" "))),
    ),
  );
  document.querySelector("#messages tbody").replaceChildren(...rows);
}

// ---------------------------------------------------------------- events
function addEvents(list) {
  for (const event of list) {
    if (event.id <= lastEvent) continue;
    lastEvent = event.id;
    events.push(event);
  }
  if (events.length > EVENTS_SHOWN) events.splice(0, events.length - EVENTS_SHOWN);
  const rows = [...events].reverse().map((e) =>
    el(
      "tr",
      { "data-kind": e.kind },
      el("td", {}, formatTime(e.time)),
      el("td", {}, e.endpoint || ""),
      el("td", {}, e.kind),
      el("td", {}, e.reason || ""),
    ),
  );
  document.querySelector("#log tbody").replaceChildren(...rows);
}

// ---------------------------------------------------------------- forms
function show(target, answer, describe) {
  const box = document.getElementById(target);
  box.replaceChildren();
  if (!answer.ok) {
    box.append(el("p", { class: "error" }, `Refused (${answer.status}): ${answer.body.error}`));
    return;
  }
  box.append(...describe(answer.body));
}

function parseJson(text, field) {
  try { return JSON.parse(text); } catch { throw new Error(`${field}: not JSON (text goes in quotes: "on")`); }
}

function wire(formId, answerId, build, describe) {
  const form = document.getElementById(formId);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const [action, body] = build(new FormData(form));
      show(answerId, await operate(action, body), describe);
    } catch (error) {
      document.getElementById(answerId).replaceChildren(el("p", { class: "error" }, error.message));
    } finally {
      button.disabled = false;
    }
  });
}

wire("desired-form", "desired-answer", (data) => {
  const value = parseJson(data.get("value"), "Value");
  const component = data.get("component").trim();
  const name = data.get("name").trim();
  const patch = component ? { [component]: { __t: "c", [name]: value } } : { [name]: value };
  return ["desired", { device: deviceId, patch }];
}, (body) => [el("p", {}, `Desired $version ${body.$version}: ${body.delivered ? "sent to the device" : "stored; the device gets it when it connects"}. The acknowledgement shows in the table above.`)]);

wire("invoke-form", "invoke-answer", (data) => {
  const payloadText = data.get("payload").trim();
  return ["invoke", {
    device: deviceId,
    command: data.get("command").trim(),
    payload: payloadText ? parseJson(payloadText, "Payload") : null,
    timeout: Number(data.get("timeout")) || 30,
  }];
}, (body) => [
  el("p", {}, "Answer: status ", el("strong", { class: "status" }, String(body.status))),
  el("pre", { class: "payload", tabindex: 0 }, JSON.stringify(body.payload, null, 2)),
]);

wire("c2d-form", "c2d-answer", (data) => {
  const properties = {};
  for (const line of data.get("properties").split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf("=");
    if (at < 1) throw new Error(`Properties: "${line}" is not name=value`);
    properties[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return ["c2d", { device: deviceId, body: data.get("body"), properties }];
}, (body) => [el("p", {}, body.queued ? "Queued: the device gets it when it next subscribes." : "Delivered to the device.")]);

// ---------------------------------------------------------------- start
setupPage();
for (const radio of document.querySelectorAll('input[name="zoom"]')) {
  radio.addEventListener("change", () => {
    windowSeconds = radio.value ? Number(radio.value) : null;
    for (const chart of charts.values()) chart.setWindow(windowSeconds);
  });
}
setInterval(() => { if (windowSeconds) for (const chart of charts.values()) chart.schedule(); }, 1000);

const data = await getJson(`data/device?id=${encodeURIComponent(deviceId)}`);
showDevice(data.device);
addTelemetry(data.telemetry);
addEvents(data.events);
lastEvent = Math.max(lastEvent, data.event_id);
follow(() => ({ view: "device", device: deviceId, after: lastEvent, telemetry_after: lastTelemetry }), {
  device: (message) => showDevice(message.device),
  telemetry: (message) => addTelemetry(message.messages),
  log: (message) => addEvents(message.events),
});
