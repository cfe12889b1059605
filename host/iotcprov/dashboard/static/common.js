// What every dashboard page shares: JSON fetches, the live event stream, operator mode,
// formatting, and a small DOM builder (text goes in as text, never as HTML).

const TOKEN_KEY = "iotcprov.dashboard.token";

/** Build an element: el("td", {class: "num"}, "42", child, ...). Strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status}`);
  return body;
}

/** A control action: POST ops/<name> with the operator token. Answers {ok, status, body}. */
export async function operate(name, body) {
  const response = await fetch(`ops/${name}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Dashboard-Token": sessionStorage.getItem(TOKEN_KEY) || "" },
    body: JSON.stringify(body),
  });
  let answer;
  try { answer = await response.json(); } catch { answer = { error: response.statusText }; }
  if (response.status === 403) setOperator(false);
  return { ok: response.ok, status: response.status, body: answer };
}

function setOperator(on) {
  document.body.classList.toggle("operator", on);
  if (!on) sessionStorage.removeItem(TOKEN_KEY);
  const state = document.querySelector("#operator .state");
  if (state) state.textContent = on ? "Operator mode" : "Read-only";
  const form = document.getElementById("operator");
  if (form) {
    form.querySelector("input").hidden = on;
    form.querySelector("label").hidden = on;
    form.querySelector("button").textContent = on ? "Leave operator mode" : "Enter operator mode";
  }
  document.dispatchEvent(new CustomEvent("operator", { detail: on }));
}

/** The header's operator form: the token is kept for this tab only (sessionStorage). */
export function setupOperator() {
  const form = document.getElementById("operator");
  if (!form) return;
  const input = form.querySelector("input");
  const message = document.getElementById("operator-message");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (document.body.classList.contains("operator")) { setOperator(false); return; }
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    const answer = await operate("check", {});
    message.textContent = answer.ok ? "" : "That token is not this emulator's dashboard token.";
    setOperator(answer.ok);
  });
  if (sessionStorage.getItem(TOKEN_KEY)) {
    operate("check", {}).then((answer) => setOperator(answer.ok));
  } else {
    setOperator(false);
  }
}

/** Follow the server's event stream; `handlers` maps event names to functions of the data. */
export function follow(query, handlers) {
  const live = document.getElementById("live");
  // EventSource reconnects by itself, with the URL it was opened with: the pages drop what they
  // already hold by its ID, so a replay after a reconnect shows nothing twice.
  const open = (params) => {
    const source = new EventSource(`stream?${new URLSearchParams(params)}`);
    source.addEventListener("open", () => { if (live) { live.dataset.state = "live"; live.textContent = "Live"; } });
    source.addEventListener("error", () => {
      if (live) { live.dataset.state = "down"; live.textContent = "Reconnecting…"; }
    });
    for (const [name, handler] of Object.entries(handlers)) {
      source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
    }
  };
  open(typeof query === "function" ? query() : query);
}

export function formatTime(seconds) {
  if (!seconds) return "—";
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

export function formatDateTime(seconds) {
  if (!seconds) return "—";
  const date = new Date(seconds * 1000);
  return `${date.toLocaleDateString()} ${date.toLocaleTimeString([], { hour12: false })}`;
}

export function ago(seconds) {
  if (!seconds) return "never";
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  if (delta < 5) return "just now";
  if (delta < 60) return `${Math.floor(delta)} s ago`;
  if (delta < 3600) return `${Math.floor(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.floor(delta / 3600)} h ago`;
  return `${Math.floor(delta / 86400)} d ago`;
}

export function enrollmentText(enrollment) {
  if (!enrollment || !enrollment.kind) return "—";
  const attestation = enrollment.attestation === "x509" ? "X.509" : "SAS";
  return enrollment.kind === "group" ? `group ${enrollment.name} (${attestation})` : `individual (${attestation})`;
}

export function badge(text, kind) {
  return el("span", { class: `badge ${kind}` }, text);
}

/** Mark the header link of the current page and wire the operator form. */
export function setupPage() {
  setupOperator();
}
