/* fleetcare console and portal: what every page shares.
 * The pages fetch the scoped JSON API with the session cookie; a change sends
 * X-Requested-With: fleetcare, which the API requires of a cookie-authenticated change (CSRF). */
"use strict";

const PAGE = JSON.parse(document.getElementById("page-data").textContent);

/** The page's text for `key` in its language, {fields} filled in. */
function T(key, fields) {
  let text = PAGE.strings[key] !== undefined ? PAGE.strings[key] : key;
  for (const [name, value] of Object.entries(fields || {})) text = text.split("{" + name + "}").join(String(value));
  return text;
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

/** Call the JSON API; throws ApiError with the API's own detail. A lost session goes to the login form. */
async function api(path, options) {
  const opts = options || {};
  const method = (opts.method || "GET").toUpperCase();
  const headers = { "Accept": "application/json" };
  let body;
  if (method !== "GET") {
    headers["X-Requested-With"] = "fleetcare";
    if (opts.body !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(opts.body); }
  }
  const resp = await fetch(path, { method, headers, body, credentials: "same-origin" });
  if (resp.status === 401) {
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new ApiError(401, "log in first");
  }
  if (resp.status === 204) return null;
  const type = resp.headers.get("content-type") || "";
  const data = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    let detail = data && data.detail !== undefined ? data.detail : String(data);
    if (Array.isArray(detail)) detail = detail.map(d => (d.loc || []).join(".") + ": " + d.msg).join("; ");
    throw new ApiError(resp.status, detail);
  }
  return data;
}

function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") u.set(k, v);
  return u.toString();
}

/** el("a", {href: "/x", class: "y"}, "text", child…): a DOM node; text is never parsed as HTML. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

function clear(node, ...children) { node.replaceChildren(...children.flat().filter(c => c !== null && c !== undefined)); return node; }

const LOCALE = PAGE.lang === "zh-CN" ? "zh-CN" : "en-GB";

function fmtTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(LOCALE, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function fmtDate(iso) { return iso ? new Date(iso).toLocaleDateString(LOCALE) : "—"; }

/** 3725 → "1 h 02 min"; short and language-neutral. */
function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(Math.abs(seconds)));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m) return `${m} min ${String(r).padStart(2, "0")} s`;
  return `${r} s`;
}

function ago(iso) {
  if (!iso) return "—";
  return fmtDuration((Date.now() - new Date(iso).getTime()) / 1000);
}

function statusBadge(status) {
  return el("span", { class: "status " + status, dataset: { status } }, T("status." + status));
}

function healthBadge(score) {
  if (score === null || score === undefined) return el("span", { class: "health none" }, "—");
  const cls = score >= 80 ? "good" : score >= 50 ? "fair" : "poor";
  return el("span", { class: "health " + cls }, Math.round(score));
}

function caseLink(c) {
  if (!c) return el("span", { class: "muted" }, "—");
  return el("a", { href: "/cases/" + c.id, class: "sev " + c.severity }, `#${c.id} ${c.severity} · ${T("case_state." + c.state)}`);
}

function toast(message, isError) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = isError ? "show error" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = ""; }, 4000);
}

function showError(id, err) {
  const box = document.getElementById(id);
  if (!box) { toast(String(err.message || err), true); return; }
  box.hidden = false;
  box.textContent = T("error") + ": " + (err.message || err);
}

/** Run fn every second (countdowns, "seen … ago"), one timer per page. */
const tickers = [];
function everySecond(fn) { tickers.push(fn); fn(); }
setInterval(() => { for (const fn of tickers) { try { fn(); } catch (e) { console.error(e); } } }, 1000);

/** The next deadline of a case: the first clock not yet met, with its due time. */
function nextClock(clocks) {
  for (const name of ["response", "onsite", "resolve"]) {
    const c = clocks && clocks[name];
    if (c && c.due && !c.met_at) return Object.assign({ name }, c);
  }
  return null;
}

/** Text and class of a countdown to `clock.due`, from the wall clock now. */
function countdown(clock) {
  if (!clock) return { text: "—", cls: "muted" };
  if (clock.paused) return { text: T("cases.paused"), cls: "paused" };
  const left = (new Date(clock.due).getTime() - Date.now()) / 1000;
  if (left < 0) return { text: T("cases.overdue", { time: fmtDuration(-left) }), cls: "overdue" };
  return { text: T("cases.left", { time: fmtDuration(left) }), cls: left < 3600 ? "soon" : "ok" };
}

document.addEventListener("DOMContentLoaded", () => {
  const out = document.getElementById("logout");
  if (out) out.addEventListener("click", async () => {
    try { await api("/logout", { method: "POST" }); } catch (e) { if (e.status !== 401) { toast(e.message, true); return; } }
    location.assign("/login");
  });
});

/** An open callback (回访) as a small form to record the answer (POST /api/v1/callbacks/{id}): the
 * customer on the portal, or the engineer who made the call on the callbacks page. */
function callbackForm(b) {
  const title = b.case_id ? T("callbacks.case", { id: b.case_id, title: b.case_title || "" })
    : T("callbacks.scheduled", { due: fmtDate(b.due_at) });
  const stars = el("select", { name: "satisfaction", required: true },
    ...[5, 4, 3, 2, 1].map(n => el("option", { value: String(n) }, String(n))));
  const resolved = b.case_id ? el("select", { name: "resolved" },
    el("option", { value: "true" }, T("callbacks.yes")), el("option", { value: "false" }, T("callbacks.no"))) : null;
  const comment = el("textarea", { name: "comment", rows: "2", maxlength: "5000" });
  const form = el("form", { class: "callback", id: "callback-" + b.id },
    el("div", { class: "strong" }, title),
    resolved ? el("label", {}, T("callbacks.resolved"), " ", resolved) : null,
    el("label", {}, T("callbacks.satisfaction"), " ", stars),
    el("label", { class: "block" }, T("callbacks.comment"), comment),
    el("button", { type: "submit" }, T("callbacks.send")));
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const body = { satisfaction: Number(stars.value), comment: comment.value };
    if (resolved) body.resolved = resolved.value === "true";
    try {
      await api("/api/v1/callbacks/" + b.id, { method: "POST", body });
      clear(form, el("p", { class: "ok" }, T("callbacks.thanks")));
    } catch (err) { toast(err.message, true); }
  });
  return form;
}

