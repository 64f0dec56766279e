/* The case queue: active cases, soonest deadline first (sort=urgency), with countdowns that tick
 * each second from the due times the API gives (the working-hours arithmetic is the server's). */
"use strict";

(() => {
  const LIMIT = 50;
  let offset = 0;
  const tbody = document.getElementById("queue-rows");

  function row(c) {
    const next = nextClock(c.clocks);
    return el("tr", { id: "case-" + c.id, dataset: { id: c.id, state: c.state }, class: c.breached ? "breached" : null },
      el("td", {}, el("a", { href: "/cases/" + c.id, class: "case-link" }, "#" + c.id)),
      el("td", {}, el("span", { class: "sev " + c.severity }, c.severity)),
      el("td", {}, c.title, c.breached ? el("span", { class: "tag overdue" }, T("cases.breached")) : null),
      el("td", {}, c.customer_name || c.customer, el("div", { class: "muted small" },
        c.device_id ? el("a", { href: "/devices/" + c.device_id }, c.device) : (c.site || ""))),
      el("td", {}, T("case_state." + c.state)),
      el("td", {}, c.assignee || "—"),
      el("td", { class: "countdown", dataset: { due: next ? next.due : "", paused: next && next.paused ? "1" : "" } },
        next ? el("span", { class: "clock-name muted small" }, T("cases." + next.name) + " ") : null, el("span", { class: "left" })));
  }

  function tick() {
    for (const td of tbody.querySelectorAll(".countdown")) {
      const left = td.querySelector(".left");
      const cd = countdown(td.dataset.due ? { due: td.dataset.due, paused: !!td.dataset.paused } : null);
      left.textContent = cd.text;
      left.className = "left " + cd.cls;
    }
  }

  async function load() {
    try {
      const page = await api("/api/v1/cases?" + qs({ active: true, sort: "urgency", limit: LIMIT, offset }));
      clear(tbody, page.items.length ? page.items.map(row) : el("tr", {}, el("td", { colspan: 7, class: "muted" }, T("nothing"))));
      const last = Math.min(offset + LIMIT, page.total);
      document.getElementById("page-info").textContent = T("page_of", { first: page.total ? offset + 1 : 0, last, total: page.total });
      document.getElementById("prev").disabled = offset === 0;
      document.getElementById("next").disabled = last >= page.total;
      tick();
    } catch (err) { showError("cases-error", err); }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("prev").addEventListener("click", () => { offset = Math.max(0, offset - LIMIT); load(); });
    document.getElementById("next").addEventListener("click", () => { offset += LIMIT; load(); });
    everySecond(tick);
    load();
    setInterval(load, 60000);  // new cases and changed states; the countdowns tick in between
  });
})();
