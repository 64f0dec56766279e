/* One case: its SLA clocks (live countdowns), description, evidence, alarms and events, and the
 * actions on it (POST /api/v1/cases/{id}/{action}; the server says when an action does not fit). */
"use strict";

(() => {
  const ID = PAGE.case_id;
  let current = null;

  // which buttons fit which state, as alerting/case_actions.py ALLOWED has it (the server refuses
  // the others with a 409 that says why anyway)
  const FITS = {
    acknowledge: ["open", "recovered"], arrive: ["open", "acknowledged"], close: ["resolved", "recovered"],
    assign: ["open", "acknowledged", "on_site", "waiting_customer", "recovered", "resolved", "suppressed"],
    resolve: ["open", "acknowledged", "on_site", "waiting_customer", "recovered"],
    comment: null,
  };

  function clocks(c) {
    const box = document.getElementById("clocks");
    clear(box, ["response", "onsite", "resolve"].flatMap(name => {
      const k = (c.clocks || {})[name];
      if (!k || !k.due) return [];
      const dd = el("dd", { class: "clock", dataset: { clock: name, due: k.due, met: k.met_at || "", paused: k.paused ? "1" : "" } });
      return [el("dt", {}, T("cases." + name), " · ", fmtTime(k.due)), dd];
    }));
    tick();
  }

  function tick() {
    for (const dd of document.querySelectorAll("#clocks .clock")) {
      if (dd.dataset.met) {
        const late = new Date(dd.dataset.met) > new Date(dd.dataset.due);
        dd.textContent = `${T("cases.met")} ${fmtTime(dd.dataset.met)}` + (late ? " · " + T("cases.breached") : "");
        dd.className = "clock " + (late ? "overdue" : "ok");
        continue;
      }
      const cd = countdown({ due: dd.dataset.due, paused: !!dd.dataset.paused });
      dd.textContent = cd.text;
      dd.className = "clock " + cd.cls;
    }
  }

  function render(c) {
    current = c;
    document.title = `#${c.id} ${c.title}`;
    clear(document.getElementById("case-title"), `#${c.id} `, el("span", { class: "sev " + c.severity }, c.severity), ` ${c.title}`);
    clear(document.getElementById("case-sub"),
      el("span", { id: "case-state", class: "state", dataset: { state: c.state } }, T("case_state." + c.state)), " · ",
      c.customer_name || c.customer, " · ",
      c.device_id ? el("a", { href: "/devices/" + c.device_id }, c.device) : (c.site || ""),
      " · ", T("cases.opened"), " ", fmtTime(c.opened_at),
      c.assignee ? ` · ${T("cases.assignee")}: ${c.assignee}` : "",
      c.breached ? el("span", { class: "tag overdue" }, T("cases.breached")) : "");
    document.getElementById("case-description").textContent = c.description || "—";
    document.getElementById("evidence").textContent = JSON.stringify(c.evidence || {}, null, 2);
    clear(document.getElementById("case-alarms"), c.alarms.length ? c.alarms.map(a =>
      el("li", {}, el("time", {}, fmtTime(a.opened_at)), " ", el("span", { class: "tag" }, `${a.detector} · ${a.severity} · ${a.state}`), " ", a.text))
      : el("li", { class: "muted" }, T("none")));
    clear(document.getElementById("case-events"), c.events.slice().reverse().map(e =>
      el("li", {}, el("time", {}, fmtTime(e.time)), " ", el("span", { class: "tag" }, e.kind), " ", el("b", {}, e.actor), " ", e.text)));
    clocks(c);
    for (const node of document.querySelectorAll("#actions [data-action]")) {
      const fits = FITS[node.dataset.action];
      const ok = !fits || fits.includes(c.state);
      if (node.tagName === "BUTTON") node.disabled = !ok; else node.hidden = !ok;
    }
  }

  async function act(action, fields) {
    try {
      const c = await api(`/api/v1/cases/${ID}/${action}`, { method: "POST", body: Object.assign({ by: PAGE.user }, fields) });
      render(c);
      toast(T("cases.done"));
      return true;
    } catch (err) { toast(err.message, true); return false; }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    for (const node of document.querySelectorAll("#actions [data-action]")) {
      if (node.tagName === "BUTTON") node.addEventListener("click", () => act(node.dataset.action, {}));
      else node.addEventListener("submit", async ev => {
        ev.preventDefault();
        if (await act(node.dataset.action, Object.fromEntries(new FormData(node).entries()))) node.reset();
      });
    }
    everySecond(tick);
    try { render(await api(`/api/v1/cases/${ID}`)); } catch (err) { showError("case-error", err); }
  });
})();
