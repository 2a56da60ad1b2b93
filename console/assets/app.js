// livehooks console. Plain JavaScript, no build step. Everything here goes
// through the public API under /v1/{project_id}/record (see /openapi.yaml),
// authenticated by the session cookie plus the CSRF header.
"use strict";

const EVENT_TYPES = ["RECORD_START", "RECORD_NEW_FILE_START", "RECORD_FILE_COMPLETE", "RECORD_OVER", "RECORD_FAILED"];
const STATUSES = ["pending", "succeeded", "failed", "dead"];
const CSRF_HEADER = "X-Livehooks-Csrf";

const state = { session: null, feed: null, timers: [] };

// ---------- small helpers ----------

// h builds an element: h("a", {href: "#"}, "text", child…). Text is always
// set as text, never parsed as HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  // A scrolling block must be reachable from the keyboard.
  if (tag === "pre") el.tabIndex = 0;
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const main = () => document.getElementById("main");
const base = () => "/v1/" + encodeURIComponent(state.session.project_id) + "/record";
const enc = encodeURIComponent;

function announce(text) {
  const s = document.getElementById("status");
  s.textContent = "";
  setTimeout(() => { s.textContent = text; }, 30);
}

function badge(text) { return h("span", { class: "badge " + text }, text); }

function fmtBytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function fmtDuration(s) {
  if (s === undefined || s === null) return "";
  const m = Math.floor(s / 60), r = s % 60;
  return m ? m + " min " + r + " s" : r + " s";
}

// toAPITime turns a datetime-local value (local time) into the API's UTC form.
function toAPITime(v) {
  if (!v) return "";
  const d = new Date(v);
  return isNaN(d) ? "" : d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function localInput(d) {
  const p = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes());
}

class APIError extends Error {
  constructor(status, body) {
    super((body && body.error_msg) || "HTTP " + status);
    this.status = status;
    this.body = body || {};
  }
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  if (method !== "GET" && state.session) opts.headers[CSRF_HEADER] = state.session.csrf_token;
  const r = await fetch(path, opts);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error_msg: text }; }
  if (r.status === 401 && path.startsWith("/v1/")) {
    state.session = null;
    showSignIn("Your session ended: " + ((data && data.error_msg) || "sign in again") + ".");
    throw new APIError(r.status, data);
  }
  if (!r.ok) throw new APIError(r.status, data);
  return data;
}

function errorNotice(err) {
  return h("div", { class: "notice bad", role: "alert" }, err.message || String(err));
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

// field returns a labelled form field with room for its error message.
function field(id, label, input, hint) {
  input.id = id;
  const err = h("span", { class: "error", id: id + "-error" });
  const hintEl = hint ? h("span", { class: "hint", id: id + "-hint" }, hint) : null;
  input.setAttribute("aria-describedby", [hint ? id + "-hint" : "", id + "-error"].join(" ").trim());
  return h("div", { class: "field", "data-field": id }, h("label", { for: id }, label), input, hintEl, err);
}

function setFieldError(form, name, msg) {
  const f = form.querySelector('[data-field="' + name + '"]');
  if (!f) return false;
  f.classList.add("invalid");
  f.querySelector(".error").textContent = msg;
  const input = f.querySelector("input, select, textarea");
  if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
  return true;
}

function clearErrors(form) {
  form.querySelectorAll(".field.invalid").forEach((f) => {
    f.classList.remove("invalid");
    f.querySelector(".error").textContent = "";
    const input = f.querySelector("input, select, textarea");
    if (input) input.removeAttribute("aria-invalid");
  });
  form.querySelectorAll(".form-error").forEach((e) => e.remove());
}

// showAPIError puts a validation message next to the field it names (the
// API's messages start with the field name), else at the top of the form.
function showAPIError(form, err, fields) {
  const msg = (err.body && err.body.error_msg) || err.message;
  const reason = msg.replace(/^Request Illegal:\s*/, "");
  const named = fields.filter((f) => reason.startsWith(f) || reason.startsWith("field " + f)).sort((a, b) => b.length - a.length)[0];
  if (named && setFieldError(form, named, reason)) return;
  if (/already exists/.test(reason) && setFieldError(form, "app", reason)) return;
  form.prepend(h("div", { class: "notice bad form-error", role: "alert" }, reason));
}

function page(title, ...children) {
  stopTimers();
  const m = main();
  m.replaceChildren(h("h1", { tabindex: "-1", id: "page-title" }, title), ...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  document.title = title + " · livehooks console";
  document.getElementById("page-title").focus();
  return m;
}

function stopTimers() {
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (state.feed) { state.feed.close(); state.feed = null; }
}

function confirmDialog(text, okLabel) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  d.returnValue = "";
  d.showModal();
  return new Promise((resolve) => d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true }));
}

// ---------- sign-in ----------

function showSignIn(message) {
  stopTimers();
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  const dev = state.dev;
  const mode = h("fieldset", {},
    h("legend", {}, "Credential"),
    h("div", { class: "checks" },
      h("label", {}, h("input", { type: "radio", name: "mode", value: "token", checked: true }), "Token (X-Auth-Token)"),
      h("label", {}, h("input", { type: "radio", name: "mode", value: "aksk" }), "Access key and secret key")));
  const tokenField = field("token", "Token", h("input", { type: "password", autocomplete: "current-password" }), "From livehooks creds, or a --token given to serve.");
  const akField = field("access_key", "Access key (AK)", h("input", { type: "text", autocomplete: "username", spellcheck: "false" }));
  const skField = field("secret_key", "Secret key (SK)", h("input", { type: "password", autocomplete: "current-password" }));
  akField.hidden = skField.hidden = true;
  const form = h("form", { class: "signin", novalidate: true },
    h("h1", { tabindex: "-1", id: "page-title" }, "Sign in to livehooks"),
    message ? h("div", { class: "notice", role: "status" }, message) : null,
    dev ? h("p", { class: "notice" }, "This server runs with --dev: no credential is checked.") : null,
    field("project_id", "Project ID", h("input", { type: "text", autocomplete: "organization", spellcheck: "false", required: true }), "The {project_id} of the API paths."),
    dev ? null : mode, dev ? null : tokenField, dev ? null : akField, dev ? null : skField,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "signin-submit" }, "Sign in")));
  form.addEventListener("change", (e) => {
    if (e.target.name !== "mode") return;
    const aksk = e.target.value === "aksk";
    tokenField.hidden = aksk;
    akField.hidden = skField.hidden = !aksk;
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const body = { project_id: form.querySelector("#project_id").value.trim() };
    if (!body.project_id) { setFieldError(form, "project_id", "Enter the project ID."); return; }
    if (!dev) {
      if (form.querySelector('input[name="mode"]:checked').value === "token") {
        body.token = form.querySelector("#token").value;
        if (!body.token) { setFieldError(form, "token", "Enter the token."); return; }
      } else {
        body.access_key = form.querySelector("#access_key").value.trim();
        body.secret_key = form.querySelector("#secret_key").value;
        if (!body.access_key) { setFieldError(form, "access_key", "Enter the access key."); return; }
        if (!body.secret_key) { setFieldError(form, "secret_key", "Enter the secret key."); return; }
      }
    }
    const button = form.querySelector("#signin-submit");
    button.disabled = true;
    button.textContent = "Signing in…";
    try {
      const r = await fetch("/console/session", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new APIError(r.status, data);
      startSession(data);
    } catch (err) {
      button.disabled = false;
      button.textContent = "Sign in";
      form.querySelector(".signin-error")?.remove();
      form.querySelector("h1").after(h("div", { class: "notice bad signin-error", role: "alert" }, err.message));
    }
  });
  main().replaceChildren(form);
  document.title = "Sign in · livehooks console";
  form.querySelector("#project_id").focus();
}

function startSession(s) {
  state.session = s;
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
  document.getElementById("who-text").textContent = "Project " + s.project_id + " · " + s.principal;
  if (!location.hash || location.hash === "#/") location.hash = "#/configs";
  else route();
}

async function signOut() {
  try {
    await fetch("/console/session", { method: "DELETE", credentials: "same-origin", headers: { [CSRF_HEADER]: state.session ? state.session.csrf_token : "" } });
  } finally {
    state.session = null;
    showSignIn("You are signed out.");
  }
}

// ---------- router ----------

const routes = [
  [/^#\/configs$/, () => configList()],
  [/^#\/configs\/new$/, () => configForm(null)],
  [/^#\/configs\/([0-9a-f]{32})$/, (m) => configDetail(m[1])],
  [/^#\/configs\/([0-9a-f]{32})\/edit$/, (m) => configEdit(m[1])],
  [/^#\/deliveries$/, () => deliveryList()],
  [/^#\/deliveries\/(\d+)$/, (m) => deliveryDetail(m[1])],
  [/^#\/live$/, () => livePage()],
  [/^#\/recordings$/, () => recordingsPage()],
];

function hashParams() {
  const i = location.hash.indexOf("?");
  return new URLSearchParams(i < 0 ? "" : location.hash.slice(i + 1));
}

function route() {
  if (!state.session) return;
  const hash = location.hash.split("?")[0] || "#/configs";
  document.querySelectorAll("#nav a").forEach((a) => {
    if (hash.startsWith(a.getAttribute("href"))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  for (const [re, fn] of routes) {
    const m = hash.match(re);
    if (m) {
      fn(m).catch((err) => { if (err.status !== 401) main().append(errorNotice(err)); });
      return;
    }
  }
  page("Not found", h("p", {}, "No such page. ", h("a", { href: "#/configs" }, "Callback configs")));
}

// ---------- callback configs ----------

async function configList() {
  const params = hashParams();
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter configs" },
    field("f-domain", "Publish domain", h("input", { type: "text", value: params.get("publish_domain") || "", spellcheck: "false" })),
    field("f-app", "App", h("input", { type: "text", value: params.get("app") || "", spellcheck: "false" })),
    h("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = "#/configs" + query({ publish_domain: filters.querySelector("#f-domain").value.trim(), app: filters.querySelector("#f-app").value.trim() });
  });
  const offset = Number(params.get("offset") || 0);
  page("Callback configs",
    h("div", { class: "actions" }, h("a", { class: "button", href: "#/configs/new" }, "New config")),
    filters);
  const data = await api("GET", base() + "/callbacks" + query({ publish_domain: params.get("publish_domain"), app: params.get("app"), offset, limit: 100 }));
  const rows = data.callback_config.map((c) => h("tr", {},
    h("td", {}, h("a", { href: "#/configs/" + c.id }, c.publish_domain)),
    h("td", {}, c.app),
    h("td", {}, c.notify_callback_url || h("span", { class: "muted" }, "none")),
    h("td", {}, c.notify_event_subscription.join(", ")),
    h("td", {}, c.disabled_reason ? h("span", { class: "badge failed", title: c.disabled_reason }, "disabled") : badge("ok")),
    h("td", {}, c.update_time)));
  const table = h("table", {},
    h("caption", {}, data.total + (data.total === 1 ? " config" : " configs")),
    h("thead", {}, h("tr", {}, ["Publish domain", "App", "Callback URL", "Events", "State", "Updated"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6 }, "No config matches."))));
  main().append(table);
  const nav = h("div", { class: "actions" });
  const link = (o, label) => h("a", { class: "button secondary", href: "#/configs" + query({ publish_domain: params.get("publish_domain"), app: params.get("app"), offset: o }) }, label);
  if (offset > 0) nav.append(link(Math.max(0, offset - 100), "Previous page"));
  if (offset + 100 < data.total) nav.append(link(offset + 100, "Next page"));
  main().append(nav);
}

const CONFIG_FIELDS = ["publish_domain", "app", "notify_callback_url", "notify_event_subscription", "sign_type", "on_demand_callback_url", "key"];

async function configEdit(id) {
  const c = await api("GET", base() + "/callbacks/" + id);
  configForm(c);
}

function configForm(c) {
  const editing = !!c;
  c = c || { publish_domain: "", app: "*", notify_callback_url: "", notify_event_subscription: ["RECORD_FILE_COMPLETE"], sign_type: "HMACSHA256", on_demand_callback_url: "" };
  const subs = h("fieldset", { "data-field": "notify_event_subscription", class: "field" },
    h("legend", {}, "Events to send"),
    h("div", { class: "checks" }, EVENT_TYPES.map((t) => h("label", {},
      h("input", { type: "checkbox", name: "sub", value: t, checked: c.notify_event_subscription.includes(t) }), t))),
    h("span", { class: "error", id: "notify_event_subscription-error" }));
  const signType = h("select", {}, ["HMACSHA256", "MD5"].map((t) => h("option", { value: t, selected: c.sign_type === t }, t)));
  const keyHint = editing ? "Write-only: leave empty to keep the current key (if any). 32–256 letters and digits, with both." : "Optional. 32–256 letters and digits, with both. Write-only: never shown again.";
  const form = h("form", { novalidate: true },
    field("publish_domain", "Publish domain", h("input", { type: "text", value: c.publish_domain, spellcheck: "false", required: true }), "The ingest domain, e.g. push.example.com."),
    field("app", "App", h("input", { type: "text", value: c.app, spellcheck: "false", required: true }), "An app name, or * for every app of the domain without its own config."),
    field("notify_callback_url", "Callback URL", h("input", { type: "url", value: c.notify_callback_url || "", spellcheck: "false" }), "http:// or https://, without query or fragment."),
    subs,
    field("sign_type", "Signature", signType),
    field("key", "Signing key", h("input", { type: "password", autocomplete: "new-password", spellcheck: "false" }), keyHint),
    editing ? h("div", { class: "checks field" }, h("label", {}, h("input", { type: "checkbox", id: "remove_key" }), "Remove the key (send unsigned callbacks)")) : null,
    field("on_demand_callback_url", "On-demand recording URL", h("input", { type: "url", value: c.on_demand_callback_url || "", spellcheck: "false" }), "Optional; asked whether to record a stream (see docs/media-servers.md)."),
    h("div", { class: "actions" },
      h("button", { type: "submit", id: "config-save" }, editing ? "Save changes" : "Create config"),
      h("a", { class: "button secondary", href: editing ? "#/configs/" + c.id : "#/configs" }, "Cancel")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const v = (id) => form.querySelector("#" + id).value.trim();
    const body = {
      publish_domain: v("publish_domain"), app: v("app"), notify_callback_url: v("notify_callback_url"),
      notify_event_subscription: [...form.querySelectorAll('input[name="sub"]:checked')].map((i) => i.value),
      sign_type: form.querySelector("#sign_type").value, on_demand_callback_url: v("on_demand_callback_url"),
    };
    const key = form.querySelector("#key").value;
    if (key) body.key = key;
    else if (editing && form.querySelector("#remove_key").checked) body.key = "";
    try {
      const saved = editing ? await api("PUT", base() + "/callbacks/" + c.id, body) : await api("POST", base() + "/callbacks", body);
      announce(editing ? "Config saved." : "Config created.");
      location.hash = "#/configs/" + saved.id;
    } catch (err) {
      if (err.status === 401) return;
      showAPIError(form, err, CONFIG_FIELDS);
    }
  });
  page(editing ? "Edit config " + c.publish_domain + " / " + c.app : "New callback config", form);
}

async function configDetail(id) {
  const c = await api("GET", base() + "/callbacks/" + id);
  const props = [
    ["ID", c.id], ["Publish domain", c.publish_domain], ["App", c.app],
    ["Callback URL", c.notify_callback_url || "none"], ["Events", c.notify_event_subscription.join(", ")],
    ["Signature", c.sign_type], ["On-demand URL", c.on_demand_callback_url || "none"],
    ["Created", c.create_time], ["Updated", c.update_time],
  ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]).flat();
  const dl = h("dl", { class: "props" }, props);
  const disabled = c.disabled_reason ? h("div", { class: "notice bad", role: "alert" },
    h("strong", {}, "Deliveries to this config are stopped. "), "Why: " + c.disabled_reason + ". ",
    h("button", { type: "button", id: "reenable", onclick: () => reenable(c) }, "Enable again")) : null;
  page("Config " + c.publish_domain + " / " + c.app,
    disabled,
    h("div", { class: "actions" },
      h("a", { class: "button", href: "#/configs/" + c.id + "/edit" }, "Edit"),
      h("a", { class: "button secondary", href: "#/deliveries?callback_id=" + c.id }, "Deliveries"),
      h("button", { type: "button", class: "danger", id: "delete-config", onclick: () => deleteConfig(c) }, "Delete")),
    dl,
    h("div", { class: "two" }, testPanel(c), replayPanel(c)));
}

async function reenable(c) {
  try {
    await api("PUT", base() + "/callbacks/" + c.id, { publish_domain: c.publish_domain, app: c.app });
    announce("Config enabled again.");
    configDetail(c.id);
  } catch (err) {
    if (err.status !== 401) main().prepend(errorNotice(err));
  }
}

async function deleteConfig(c) {
  const ok = await confirmDialog("Delete the config of " + c.publish_domain + " / " + c.app + "? Its pending deliveries are dropped. This cannot be undone.", "Delete config");
  if (!ok) { document.getElementById("delete-config").focus(); return; }
  try {
    await api("DELETE", base() + "/callbacks/" + c.id);
    announce("Config deleted.");
    location.hash = "#/configs";
  } catch (err) {
    if (err.status !== 401) main().prepend(errorNotice(err));
  }
}

function testPanel(c) {
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", {},
    h("h2", {}, "Send a test event"),
    h("p", { class: "muted" }, "Sends a sample event to the callback URL now, signed like a real callback (stream livehooks-test). Nothing is stored."),
    field("test-type", "Event type", h("select", {}, EVENT_TYPES.map((t) => h("option", { value: t, selected: t === "RECORD_FILE_COMPLETE" }, t)))),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "test-send" }, "Send test event")), out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    out.replaceChildren(h("p", {}, "Sending…"));
    try {
      const r = await api("POST", base() + "/callbacks/" + c.id + "/test" + query({ event_type: form.querySelector("#test-type").value }));
      const ok = r.status_code >= 200 && r.status_code < 300;
      out.replaceChildren(
        h("div", { class: "notice " + (ok ? "ok" : "bad"), id: "test-result" },
          r.status_code ? "The receiver answered " + r.status_code + " in " + r.latency_ms + " ms." : "No answer: " + r.error),
        h("h3", {}, "Answer body"), h("pre", {}, r.response_body || "(empty)"),
        h("h3", {}, "Request body sent"), h("pre", {}, JSON.stringify(r.request_body, null, 2)));
    } catch (err) {
      if (err.status !== 401) out.replaceChildren(errorNotice(err));
    }
  });
  return form;
}

function replayPanel(c) {
  const now = new Date();
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { novalidate: true },
    h("h2", {}, "Replay a time range"),
    h("p", { class: "muted" }, "Sends again the stored events of the range (by ingest time) that this config subscribes to, with their original webhook-id."),
    field("replay-since", "From (your local time)", h("input", { type: "datetime-local", value: localInput(new Date(now - 3600e3)) })),
    field("replay-until", "Until (your local time)", h("input", { type: "datetime-local", value: localInput(new Date(now.getTime() + 60e3)) })),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "replay-send" }, "Replay")), out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const since = toAPITime(form.querySelector("#replay-since").value);
    const until = toAPITime(form.querySelector("#replay-until").value);
    if (!since) { setFieldError(form, "replay-since", "Enter the start of the range."); return; }
    const ok = await confirmDialog("Send again every subscribed event stored between " + since + " and " + (until || "now") + "?", "Replay");
    if (!ok) return;
    try {
      const r = await api("POST", base() + "/callbacks/" + c.id + "/replay" + query({ since, until }));
      out.replaceChildren(h("div", { class: "notice ok", id: "replay-result" },
        r.queued + (r.queued === 1 ? " delivery queued." : " deliveries queued.") + (r.truncated ? " More remain: replay again from " + r.next_since + "." : "")));
    } catch (err) {
      if (err.status === 401) return;
      showAPIError(form, err, []);
    }
  });
  return form;
}

// ---------- deliveries ----------

async function deliveryList() {
  const p = hashParams();
  const configs = (await api("GET", base() + "/callbacks?limit=100")).callback_config;
  const sel = (id, label, options, value) => field(id, label, h("select", {}, h("option", { value: "" }, "any"),
    options.map(([v, t]) => h("option", { value: v, selected: v === value }, t))));
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter deliveries" },
    sel("f-config", "Config", configs.map((c) => [c.id, c.publish_domain + " / " + c.app]), p.get("callback_id") || ""),
    sel("f-status", "Status", STATUSES.map((s) => [s, s]), p.get("status") || ""),
    sel("f-type", "Event type", EVENT_TYPES.map((s) => [s, s]), p.get("event_type") || ""),
    field("f-stream", "Stream", h("input", { type: "text", value: p.get("stream") || "", spellcheck: "false", size: 14 })),
    field("f-since", "From", h("input", { type: "datetime-local", value: p.get("since") ? localInput(new Date(p.get("since"))) : "" })),
    field("f-until", "Until", h("input", { type: "datetime-local", value: p.get("until") ? localInput(new Date(p.get("until"))) : "" })),
    h("button", { type: "submit" }, "Filter"));
  const params = {
    callback_id: p.get("callback_id"), status: p.get("status"), event_type: p.get("event_type"),
    stream: p.get("stream"), since: p.get("since"), until: p.get("until"),
  };
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    const v = (id) => filters.querySelector("#" + id).value.trim();
    location.hash = "#/deliveries" + query({
      callback_id: v("f-config"), status: v("f-status"), event_type: v("f-type"), stream: v("f-stream"),
      since: toAPITime(v("f-since")), until: toAPITime(v("f-until")),
    });
  });
  page("Deliveries", filters);
  const before = p.get("before");
  const data = await api("GET", base() + "/deliveries" + query({ ...params, before, limit: 50 }));
  const cfgName = Object.fromEntries(configs.map((c) => [c.id, c.publish_domain + " / " + c.app]));
  const rows = data.deliveries.map((d) => h("tr", {},
    h("td", {}, h("a", { href: "#/deliveries/" + d.delivery_id }, d.delivery_id)),
    h("td", {}, d.create_time),
    h("td", {}, cfgName[d.callback_id] || d.callback_id),
    h("td", {}, d.event_type), h("td", {}, d.stream),
    h("td", {}, badge(d.status)),
    h("td", { class: "num" }, d.attempts),
    h("td", {}, d.last_status_code ? String(d.last_status_code) : ""),
    h("td", {}, d.last_error || (d.next_attempt_time ? "next try " + d.next_attempt_time : ""))));
  main().append(h("table", { id: "deliveries" },
    h("caption", {}, "Newest first" + (before ? ", older than delivery " + before : "")),
    h("thead", {}, h("tr", {}, ["ID", "Created", "Config", "Event", "Stream", "Status", "Attempts", "Last HTTP status", "Last error"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 9 }, "No delivery matches.")))));
  if (!rows.length && !data.next_before && !before) {
    main().append(h("div", { class: "notice", id: "no-delivery-hint" },
      "No delivery means no callback was ever queued for these filters. Either no event arrived, or no config took it: an event goes to the config of its publish domain with its exact app, else to the domain's * config, and only if that config subscribes to its event type. ",
      "The ", h("a", { href: "#/live" }, "Live"), " page shows every event as it arrives (\u201cno config matched\u201d when none took it), and ",
      h("a", { href: "#/recordings" }, "Recordings"), " lists the events stored per domain."));
  }
  const nav = h("div", { class: "actions" });
  if (data.next_before && data.deliveries.length < 50) {
    nav.append(h("p", { class: "muted", id: "short-page" }, "Each page looks at a window of 5,000 delivery ids; this one found " + data.deliveries.length + ". Older searches further back."));
  }
  if (before) nav.append(h("a", { class: "button secondary", href: "#/deliveries" + query(params) }, "Newest"));
  if (data.next_before) nav.append(h("a", { class: "button secondary", id: "older", href: "#/deliveries" + query({ ...params, before: data.next_before }) }, "Older"));
  main().append(nav);
}

async function deliveryDetail(id) {
  const d = await api("GET", base() + "/deliveries/" + id);
  let cfg = null;
  try { cfg = await api("GET", base() + "/callbacks/" + d.callback_id); } catch (e) { if (e.status === 401) return; }
  const why = explain(d, cfg);
  const props = [
    ["Status", badge(d.status)], ["Config", cfg ? h("a", { href: "#/configs/" + cfg.id }, cfg.publish_domain + " / " + cfg.app) : d.callback_id + " (deleted)"],
    ["Callback URL", cfg ? cfg.notify_callback_url : ""], ["Event", d.event_type], ["Stream", d.stream], ["Event ID", d.event_id],
    ["webhook-id", d.webhook_id], ["Created", d.create_time], ["Updated", d.update_time], ["Attempts", String(d.attempts)],
    d.next_attempt_time ? ["Next attempt", d.next_attempt_time] : null, d.latency_ms ? ["Ingest to 2xx", d.latency_ms + " ms"] : null,
  ].filter(Boolean);
  const attempts = (d.attempt_list || []).map((a) => h("tr", {},
    h("td", { class: "num" }, a.attempt), h("td", {}, a.time),
    h("td", {}, a.status_code ? String(a.status_code) : "none"),
    h("td", { class: "num" }, a.latency_ms.toFixed(1) + " ms"),
    h("td", {}, a.response_body ? h("code", {}, a.response_body.slice(0, 200)) : ""),
    h("td", {}, a.error || "")));
  const requests = (d.attempt_list || []).filter((a) => a.request).map((a) => h("details", { class: "request" },
    h("summary", {}, "Request of attempt " + a.attempt + " (" + a.time + ")"),
    h("pre", { "aria-label": "Headers of attempt " + a.attempt }, "POST " + a.request.url + "\n" + Object.entries(a.request.headers).map(([k, v]) => k + ": " + v).join("\n")),
    h("pre", { "aria-label": "Body of attempt " + a.attempt }, a.request.body)));
  page("Delivery " + d.delivery_id,
    why ? h("div", { class: "notice " + (d.status === "succeeded" ? "ok" : d.status === "pending" ? "" : "bad"), id: "why" }, why) : null,
    h("div", { class: "actions" },
      d.status !== "pending" ? h("button", { type: "button", id: "retry", onclick: () => retry(d) }, "Retry now") : null,
      h("a", { class: "button secondary", href: "#/deliveries?callback_id=" + d.callback_id + "&stream=" + enc(d.stream) }, "Other deliveries of this stream")),
    h("dl", { class: "props" }, props.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]).flat()),
    h("h2", {}, "Attempts"),
    h("table", { id: "attempts" },
      h("thead", {}, h("tr", {}, ["#", "Time", "HTTP status", "Latency", "Answer (first 200 characters)", "Error"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, attempts.length ? attempts : h("tr", {}, h("td", { colspan: 6 }, "No attempt yet.")))),
    h("h2", {}, "What was sent"),
    requests.length ? h("p", { class: "muted" }, "Each attempt is signed afresh. Below, the exact headers and body of each attempt, rebuilt from the stored event, the attempt's time and the config's key and URL of now (after a key change the signatures shown are the new key's).") : null,
    requests.length ? requests : [h("p", { class: "muted" }, "The stored event (each attempt adds its own auth_sign and auth_timestamp):"), h("pre", {}, prettyJSON(d.event))]);
}

function prettyJSON(v) {
  try { return JSON.stringify(typeof v === "string" ? JSON.parse(v) : v, null, 2); } catch (e) { return String(v); }
}

// explain says in one sentence why a delivery is where it is.
function explain(d, cfg) {
  const last = (d.attempt_list || [])[d.attempt_list ? d.attempt_list.length - 1 : 0];
  if (!cfg) return "The config of this delivery was deleted.";
  switch (d.status) {
  case "succeeded": return "Delivered: the receiver answered " + (d.last_status_code || "2xx") + ".";
  case "pending":
    if (!last) return "Waiting to be sent (an earlier event of the same stream may still be in flight or retrying).";
    return "Retrying: the last attempt got " + (last.status_code ? "HTTP " + last.status_code : last.error) + (d.next_attempt_time ? "; next attempt at " + d.next_attempt_time : "") + ".";
  case "failed":
    if (cfg.disabled_reason) return "Failed, and the config is disabled: " + cfg.disabled_reason + ".";
    return "Failed for good: " + (d.last_error || (last && last.status_code ? "the receiver answered " + last.status_code + ", which is not retried" : "not retried")) + ".";
  case "dead": return "Dead-lettered: every retry failed for the whole retry window. Last: " + (d.last_error || "HTTP " + d.last_status_code) + ".";
  }
  return "";
}

async function retry(d) {
  try {
    await api("POST", base() + "/deliveries/" + d.delivery_id + "/retry");
    announce("Retry queued.");
    main().prepend(h("div", { class: "notice ok", id: "retry-result", role: "status" }, "Retry queued: a new delivery with the same webhook-id goes out now. ",
      h("a", { href: "#/deliveries?callback_id=" + d.callback_id + "&stream=" + enc(d.stream) }, "See it in the log")));
  } catch (err) {
    if (err.status !== 401) main().prepend(errorNotice(err));
  }
}

// ---------- live ----------

async function livePage() {
  const list = h("ol", { class: "feed", id: "feed", "aria-label": "Live feed, newest first" });
  const stateEl = h("p", { class: "muted", id: "feed-state" }, "Connecting…");
  const cards = h("div", { class: "cards", id: "destinations" });
  page("Live", h("div", { class: "two" },
    h("section", { "aria-labelledby": "feed-h" }, h("h2", { id: "feed-h" }, "Events and deliveries as they happen"), stateEl, list),
    h("section", { "aria-labelledby": "dest-h" }, h("h2", { id: "dest-h" }, "Destinations, last hour"), cards)));
  const refresh = async () => {
    try {
      const r = await api("GET", base() + "/destinations");
      cards.replaceChildren(...(r.destinations.length ? r.destinations.map(destinationCard) : [h("p", {}, "No delivery attempt in the last hour.")]));
    } catch (err) {
      if (err.status !== 401) cards.replaceChildren(errorNotice(err));
    }
  };
  const es = new EventSource(base() + "/feed");
  state.feed = es;
  es.onopen = () => { stateEl.textContent = "Connected: new items appear at the top."; };
  es.onerror = () => { stateEl.textContent = "Disconnected; reconnecting…"; };
  const add = (li) => {
    list.prepend(li);
    while (list.children.length > 200) list.lastChild.remove();
  };
  es.addEventListener("event", (m) => {
    const e = JSON.parse(m.data);
    add(h("li", { class: "item-event" }, h("time", {}, e.time), h("strong", {}, e.event_type),
      h("span", {}, e.publish_domain + "/" + e.app + "/" + e.stream),
      e.deliveries ? h("span", {}, e.deliveries + (e.deliveries === 1 ? " delivery" : " deliveries")) : h("span", { class: "badge warn" }, "no config matched")));
  });
  let pending = null;
  const refreshSoon = () => { if (!pending) pending = setTimeout(() => { pending = null; refresh(); }, 1500); };
  es.addEventListener("lost", () => {
    add(h("li", { class: "item-lost" }, h("span", { class: "badge warn" }, "items missed"), "This page fell behind; the delivery log has everything."));
  });
  es.addEventListener("delivery", (m) => {
    const d = JSON.parse(m.data);
    if (d.kind === "attempt") refreshSoon();
    const what = d.kind === "queued" ? "queued" : (d.status_code ? "HTTP " + d.status_code : d.error || "no answer") + " in " + d.latency_ms + " ms";
    add(h("li", { class: "item-delivery" }, h("time", {}, d.time),
      h("a", { href: "#/deliveries/" + d.delivery_id }, "delivery " + d.delivery_id),
      h("span", {}, d.event_type), h("span", {}, d.stream), badge(d.status), h("span", {}, what)));
  });
  await refresh();
  state.timers.push(setInterval(refresh, 10000));
}

// destinationCard draws a destination's last hour: one bar per minute
// (successes green, failures red, stacked) and its mean latency as a line.
function destinationCard(dst) {
  const W = 360, H = 120, PAD = 22, minutes = dst.minutes;
  const maxCount = Math.max(1, ...minutes.map((m) => m.succeeded + m.failed));
  const maxLat = Math.max(1, ...minutes.map((m) => m.latency_ms_avg || 0));
  const bw = (W - PAD) / minutes.length;
  const bars = [];
  const points = [];
  minutes.forEach((m, i) => {
    const x = PAD + i * bw;
    const okH = (H - PAD) * m.succeeded / maxCount, badH = (H - PAD) * m.failed / maxCount;
    if (m.succeeded) bars.push(svg("rect", { x: x + 0.5, y: H - PAD - okH, width: Math.max(1, bw - 1), height: okH, fill: "#1e7b34" }));
    if (m.failed) bars.push(svg("rect", { x: x + 0.5, y: H - PAD - okH - badH, width: Math.max(1, bw - 1), height: badH, fill: "#c5221f" }));
    if (m.succeeded + m.failed) points.push((x + bw / 2).toFixed(1) + "," + ((H - PAD) * (1 - (m.latency_ms_avg || 0) / maxLat)).toFixed(1));
  });
  const total = minutes.reduce((a, m) => ({ ok: a.ok + m.succeeded, bad: a.bad + m.failed }), { ok: 0, bad: 0 });
  const label = dst.destination + ": " + total.ok + " succeeded and " + total.bad + " failed attempts in the last hour; highest mean latency in a minute " + maxLat.toFixed(1) + " ms; breaker " + dst.breaker + ".";
  const chart = svg("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": label },
    svg("title", {}, label),
    svg("line", { x1: PAD, y1: H - PAD, x2: W, y2: H - PAD, stroke: "#6b6f7a" }),
    svg("text", { x: 0, y: 10, "font-size": 10, fill: "#4a4a55" }, String(maxCount)),
    svg("text", { x: 0, y: H - PAD, "font-size": 10, fill: "#4a4a55" }, "0"),
    svg("text", { x: PAD, y: H - 6, "font-size": 10, fill: "#4a4a55" }, "−60 min"),
    svg("text", { x: W - 24, y: H - 6, "font-size": 10, fill: "#4a4a55" }, "now"),
    bars,
    points.length > 1 ? svg("polyline", { points: points.join(" "), fill: "none", stroke: "#0b57d0", "stroke-width": 1.5 }) : null);
  return h("div", { class: "card" },
    h("h3", {}, dst.destination),
    h("p", {}, "Breaker ", badge(dst.breaker), " · ", total.ok + " ok, " + total.bad + " failed"),
    chart,
    h("div", { class: "legend" },
      h("span", {}, h("span", { class: "swatch ok" }), "succeeded"),
      h("span", {}, h("span", { class: "swatch bad" }), "failed"),
      h("span", {}, h("span", { class: "swatch latency" }), "mean latency (max " + maxLat.toFixed(1) + " ms)")));
}

// ---------- recordings ----------

async function recordingsPage() {
  const p = hashParams();
  const [domains, configs] = await Promise.all([
    api("GET", base() + "/domains").catch((e) => { if (e.status === 401) throw e; return { domains: [] }; }),
    api("GET", base() + "/callbacks?limit=100"),
  ]);
  const names = [...new Set([...(domains.domains || []).map((d) => d.publish_domain), ...configs.callback_config.map((c) => c.publish_domain)])].sort();
  const domain = p.get("domain") || names[0] || "";
  const pick = h("form", { class: "filters", "aria-label": "Choose a publish domain" },
    field("r-domain", "Publish domain", h("input", { type: "text", list: "r-domains", value: domain, spellcheck: "false" })),
    h("datalist", { id: "r-domains" }, names.map((n) => h("option", { value: n }))),
    h("button", { type: "submit" }, "Show"));
  pick.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = "#/recordings" + query({ domain: pick.querySelector("#r-domain").value.trim() });
  });
  page("Recordings", pick);
  if (!domain) { main().append(h("p", {}, "No publish domain yet: create a callback config first.")); return; }
  const d = enc(domain);
  const [streams, tasks, settings] = await Promise.all([
    api("GET", base() + "/domains/" + d + "/streams"),
    api("GET", base() + "/domains/" + d + "/tasks?limit=20"),
    api("GET", base() + "/domains/" + d).catch((e) => { if (e.status === 404) return null; throw e; }),
  ]);
  main().append(...[
    h("h2", {}, "Streams being recorded now"),
    h("table", { id: "streams" },
      h("thead", {}, h("tr", {}, ["App", "Stream", "State", "Task", "File", "Published", "Ends at (if paused)"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, streams.streams.length ? streams.streams.map((s) => h("tr", {},
        h("td", {}, s.app), h("td", {}, s.stream), h("td", {}, h("span", { class: "badge " + (s.state === "live" ? "ok" : "warn") }, s.state)),
        h("td", {}, h("code", {}, s.task_id)), h("td", {}, s.job_id ? "#" + s.file_seq + " since " + s.file_started_at : ""),
        h("td", {}, s.published_at || ""), h("td", {}, s.over_at || "")))
        : h("tr", {}, h("td", { colspan: 7 }, "No stream is being recorded.")))),
    h("h2", {}, "Recent tasks"),
    tasks.tasks.length ? tasks.tasks.map(taskSection) : h("p", {}, "No recording event stored for this domain."),
    domainSettingsForm(domain, settings)].flat());
}

function taskSection(t) {
  const callbacks = "#/deliveries" + query({ stream: t.stream, since: t.start_time });
  return h("section", { class: "card task", "aria-label": "Task " + t.task_id },
    h("h3", {}, t.app + "/" + t.stream, " ", h("span", { class: "badge " + (t.state === "failed" ? "failed" : t.state === "over" ? "ok" : "warn") }, t.state)),
    h("p", { class: "muted" }, "Task ", h("code", {}, t.task_id), " · from " + t.start_time + (t.end_time ? " to " + t.end_time : ""),
      " · ", h("a", { href: callbacks }, "its callbacks")),
    t.error_message ? h("p", { class: "notice bad" }, t.error_message) : null,
    t.files.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["File (job)", "Duration", "Size", "Resolution", "Format", "Download"].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, t.files.map((f) => h("tr", {},
        h("td", {}, h("code", {}, f.job_id)), h("td", {}, fmtDuration(f.record_duration)), h("td", {}, fmtBytes(f.file_size)),
        h("td", {}, f.width ? f.width + "×" + f.height : ""), h("td", {}, f.record_format || ""),
        h("td", {}, f.download_url ? h("a", { href: f.download_url, rel: "noopener noreferrer" }, "download") : "")))))
      : h("p", {}, "No finished file yet."));
}

function domainSettingsForm(domain, s) {
  s = s || { record_format: "FLV", max_pause_seconds: 30, reject_unknown_streams: false };
  const st = s.storage || {};
  const form = h("form", { novalidate: true, id: "domain-settings" },
    h("h2", {}, "Recording settings of " + domain),
    s.create_time ? null : h("p", { class: "muted" }, "This domain has no settings yet: the defaults apply."),
    field("record_format", "Recorder file format", h("select", {}, ["FLV", "MP4", "HLS"].map((f) => h("option", { value: f, selected: s.record_format === f }, f)))),
    field("max_pause_seconds", "Maximum pause (seconds)", h("input", { type: "number", min: 0, max: 86400, value: s.max_pause_seconds }), "A republish within it continues the task; 0 ends it when the publisher stops."),
    field("download_url_template", "Download URL template", h("input", { type: "text", value: s.download_url_template || "", spellcheck: "false" }), "Placeholders {domain} {app} {stream} {file} {job_id} {task_id}."),
    field("play_url_template", "Play URL template", h("input", { type: "text", value: s.play_url_template || "", spellcheck: "false" })),
    h("div", { class: "checks field" }, h("label", {}, h("input", { type: "checkbox", id: "reject_unknown_streams", checked: s.reject_unknown_streams }), "Refuse streams that no callback config matches")),
    h("fieldset", {}, h("legend", {}, "Object storage (optional)"),
      field("storage.endpoint", "Endpoint (host[:port])", h("input", { type: "text", value: st.endpoint || "", spellcheck: "false" })),
      field("storage.bucket", "Bucket", h("input", { type: "text", value: st.bucket || "", spellcheck: "false" })),
      field("storage.prefix", "Prefix", h("input", { type: "text", value: st.prefix || "", spellcheck: "false" })),
      field("storage.region", "Region", h("input", { type: "text", value: st.region || "", spellcheck: "false" })),
      field("storage.access_key", "Access key", h("input", { type: "text", value: st.access_key || "", spellcheck: "false" })),
      field("storage.secret_key", "Secret key", h("input", { type: "password", autocomplete: "new-password" }), "Write-only: leave empty to keep the current one."),
      h("div", { class: "checks" },
        h("label", {}, h("input", { type: "checkbox", id: "storage.secure", checked: st.secure }), "HTTPS"),
        h("label", {}, h("input", { type: "checkbox", id: "storage.presign", checked: st.presign }), "Presigned download URLs"))),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "domain-save" }, "Save settings"),
      s.create_time ? h("button", { type: "button", class: "danger", id: "domain-delete", onclick: () => deleteDomainSettings(domain) }, "Delete settings") : null));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const v = (id) => form.querySelector('[id="' + id + '"]');
    const body = {
      record_format: v("record_format").value, max_pause_seconds: Number(v("max_pause_seconds").value),
      download_url_template: v("download_url_template").value.trim(), play_url_template: v("play_url_template").value.trim(),
      reject_unknown_streams: v("reject_unknown_streams").checked,
    };
    if (v("storage.endpoint").value.trim()) {
      body.storage = {
        endpoint: v("storage.endpoint").value.trim(), bucket: v("storage.bucket").value.trim(), prefix: v("storage.prefix").value.trim(),
        region: v("storage.region").value.trim(), access_key: v("storage.access_key").value.trim(),
        secure: v("storage.secure").checked, presign: v("storage.presign").checked,
      };
      if (v("storage.secret_key").value) body.storage.secret_key = v("storage.secret_key").value;
    }
    try {
      const saved = await api("PUT", base() + "/domains/" + enc(domain), body);
      const fresh = domainSettingsForm(domain, saved);
      form.replaceWith(fresh);
      fresh.querySelector(".actions").append(h("span", { class: "badge ok", role: "status" }, "Saved"));
      fresh.querySelector("#domain-save").focus();
    } catch (err) {
      if (err.status === 401) return;
      showAPIError(form, err, ["record_format", "max_pause_seconds", "download_url_template", "play_url_template",
        "storage.endpoint", "storage.bucket", "storage.prefix", "storage.region", "storage.access_key", "storage.secret_key"]);
    }
  });
  return form;
}

async function deleteDomainSettings(domain) {
  const ok = await confirmDialog("Delete the recording settings of " + domain + "? The domain goes back to the defaults (FLV, 30 s pause, no download URL template, no storage).", "Delete settings");
  if (!ok) { document.getElementById("domain-delete").focus(); return; }
  try {
    await api("DELETE", base() + "/domains/" + enc(domain));
    announce("Settings deleted.");
    recordingsPage();
  } catch (err) {
    if (err.status !== 401) main().prepend(errorNotice(err));
  }
}

// ---------- start ----------

async function start() {
  document.getElementById("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  const r = await fetch("/console/session", { credentials: "same-origin" });
  const data = await r.json().catch(() => ({}));
  if (r.ok) { state.dev = !!data.dev; startSession(data); return; }
  state.dev = !!data.dev;
  showSignIn();
}

start();
