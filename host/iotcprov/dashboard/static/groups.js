// Enrollment groups and individual enrollments: verified or not, enabled or not; operators
// enable and disable them. Refreshed whenever the emulator logs an event.
import { badge, el, follow, getJson, operate, setupPage } from "./common.js";

function toggle(label, enabled, action, body) {
  return el("td", { class: "operator-only" }, el("button", {
    type: "button",
    class: "secondary",
    "aria-label": `${enabled ? "Disable" : "Enable"} ${label}`,
    onclick: async () => {
      const answer = await operate(action, { ...body, enabled: !enabled });
      const box = document.getElementById("action-answer");
      box.replaceChildren(answer.ok
        ? el("p", {}, `${label}: ${answer.body.enabled ? "enabled" : "disabled"}.`)
        : el("p", { class: "error" }, `Refused (${answer.status}): ${answer.body.error}`));
      refresh();
    },
  }, enabled ? "Disable" : "Enable"));
}

function enabledBadge(enabled) {
  return enabled ? badge("enabled", "ok") : badge("disabled", "bad");
}

async function refresh() {
  const data = await getJson("data/groups");
  const groups = data.groups.map((g) => el("tr", { "data-group": g.name },
    el("td", {}, g.name),
    el("td", {}, g.attestation === "x509" ? "X.509" : "SAS"),
    el("td", {}, g.attestation === "x509" ? (g.verified ? badge("verified", "ok") : badge("not verified", "warn")) : "n/a (SAS)"),
    el("td", {}, enabledBadge(g.enabled)),
    toggle(`group ${g.name}`, g.enabled, "group-enabled", { name: g.name }),
  ));
  if (!groups.length) groups.push(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No enrollment group.")));
  document.querySelector("#groups tbody").replaceChildren(...groups);
  const enrollments = data.enrollments.map((e) => el("tr", { "data-device": e.device_id },
    el("td", {}, e.device_id),
    el("td", {}, e.attestation === "x509" ? "X.509" : "SAS"),
    el("td", {}, enabledBadge(e.enabled)),
    toggle(`enrollment ${e.device_id}`, e.enabled, "enrollment-enabled", { device: e.device_id }),
  ));
  if (!enrollments.length) enrollments.push(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No individual enrollment.")));
  document.querySelector("#enrollments tbody").replaceChildren(...enrollments);
}

let timer = null;
setupPage();
await refresh();
follow({ view: "events" }, {
  log: () => { clearTimeout(timer); timer = setTimeout(refresh, 300); },
});
