/* The customer portal: the fleet table (fleet.js) limited by the API to the customer's own devices,
 * their open and past cases with SLA status, inspections, and monthly health reports. */
"use strict";

(() => {
  function caseRow(c) {
    const next = nextClock(c.clocks);
    const cd = countdown(next);
    return el("tr", { id: "pcase-" + c.id },
      el("td", {}, el("a", { href: "/cases/" + c.id }, "#" + c.id), " ", el("span", { class: "sev " + c.severity }, c.severity)),
      el("td", {}, c.title, el("div", { class: "muted small" }, (c.device || c.site || "") + " · " + T("case_state." + c.state))),
      el("td", {}, c.breached ? el("span", { class: "tag overdue" }, T("cases.breached"))
        : next ? el("span", { class: "countdown " + cd.cls, dataset: { due: next.due, paused: next.paused ? "1" : "" } }, cd.text)
        : el("span", { class: "ok" }, T("cases.on_time"))));
  }

  async function cases() {
    const [open, past] = await Promise.all([api("/api/v1/cases?active=true&sort=urgency&limit=50"), api("/api/v1/cases?state=closed&limit=20")]);
    clear(document.getElementById("open-cases"), open.items.length ? open.items.map(caseRow) : el("tr", {}, el("td", { class: "muted" }, T("nothing"))));
    clear(document.getElementById("past-cases"), past.items.length ? past.items.map(caseRow) : el("tr", {}, el("td", { class: "muted" }, T("nothing"))));
    everySecond(() => {
      for (const s of document.querySelectorAll("#open-cases .countdown")) {
        const cd = countdown({ due: s.dataset.due, paused: !!s.dataset.paused });
        s.textContent = cd.text; s.className = "countdown " + cd.cls;
      }
    });
  }

  async function inspections() {
    const [planned, done] = await Promise.all([api("/api/v1/inspections?state=planned&limit=20"), api("/api/v1/inspections?state=done&limit=20")]);
    const item = i => el("li", {}, el("a", { href: "/inspections/" + i.id }, `${fmtDate(i.done_at || i.due_on)} · ${i.device}`), " ", el("span", { class: "muted small" }, i.checklist));
    clear(document.getElementById("planned"), planned.length ? planned.map(item) : el("li", { class: "muted" }, T("nothing")));
    clear(document.getElementById("inspections-done"), done.length ? done.map(item) : el("li", { class: "muted" }, T("nothing")));
  }

  async function reports() {
    const ids = PAGE.customers || (await api("/api/v1/customers")).slice(0, 20).map(c => c.id);
    const lists = await Promise.all(ids.map(id => api(`/api/v1/customers/${id}/reports`).then(r => [id, r])));
    const items = [];
    for (const [, list] of lists) {
      // one line a month: the issued report (in the page's language if it was issued in it, else in the
      // language it was issued in), else the provisional one in the page's language
      const periods = [...new Set(list.map(r => r.period))];
      const pick = p => {
        const of = list.filter(r => r.period === p);
        return of.find(r => r.stored && r.lang === PAGE.lang) || of.find(r => r.stored)
          || of.find(r => r.lang === PAGE.lang) || of[0];
      };
      for (const r of periods.map(pick).slice(0, 12)) {
        items.push(el("li", { class: "report", dataset: { period: r.period } }, `${T("portal.period")} ${r.period} `,
          el("span", { class: "tag" }, r.stored ? T("portal.issued") : T("portal.provisional")), " ",
          r.lang !== PAGE.lang ? el("span", { class: "muted small" }, r.lang + " ") : null,
          el("a", { href: r.html, target: "_blank", rel: "noopener" }, T("portal.report_html")), " · ",
          el("a", { href: r.pdf, target: "_blank", rel: "noopener" }, T("portal.report_pdf"))));
      }
    }
    clear(document.getElementById("reports"), items.length ? items : el("li", { class: "muted" }, T("nothing")));
  }

  async function callbacks() {
    const open = await api("/api/v1/callbacks?state=open&limit=20");
    clear(document.getElementById("callbacks"), open.length ? open.map(callbackForm) : el("p", { class: "muted" }, T("nothing")));
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const part of [cases, inspections, reports, callbacks]) part().catch(err => showError("portal-error", err));
  });
})();
