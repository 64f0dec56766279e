/* Inspections: the planned ones, soonest due (overdue first), and the visits grouped by site. */
"use strict";

(() => {
  function row(i) {
    return el("tr", { id: "insp-" + i.id, class: i.overdue_days > 0 ? "overdue-row" : null },
      el("td", {}, el("a", { href: "/inspections/" + i.id, class: "insp-link" }, fmtDate(i.due_on)),
        i.overdue_days > 0 ? el("div", { class: "tag overdue" }, T(i.overdue_days === 1 ? "insp.overdue_day" : "insp.overdue_days", { n: i.overdue_days })) : null,
        el("div", { class: "muted small" }, T("insp.latest_on") + " " + fmtDate(i.latest_on))),
      el("td", {}, i.customer, el("div", { class: "muted small" }, i.site_name || i.site || "")),
      el("td", {}, el("a", { href: "/devices/" + i.device_id }, i.device), el("div", { class: "muted small" }, i.kind)),
      el("td", {}, i.checklist),
      el("td", {}, i.reason),
      el("td", {}, i.assignee || "—"));
  }

  document.addEventListener("DOMContentLoaded", async () => {
    try {
      const [planned, routes] = await Promise.all([api("/api/v1/inspections?state=planned&limit=500"), api("/api/v1/inspections/routes")]);
      planned.sort((a, b) => b.overdue_days - a.overdue_days || a.due_on.localeCompare(b.due_on));
      clear(document.getElementById("insp-rows"), planned.length ? planned.map(row)
        : el("tr", {}, el("td", { colspan: 6, class: "muted" }, T("nothing"))));
      clear(document.getElementById("routes"), routes.length ? routes.map(r => el("section", { class: "card route" },
        el("h3", {}, `${r.customer} / ${r.site_name || r.site}`),
        el("p", { class: "muted" }, `${T("insp.due_on")} ${fmtDate(r.first_due_on)} · ${T("insp.devices")}: ${r.devices}`),
        el("ul", { class: "plain" }, r.inspections.map(i => el("li", {}, el("a", { href: "/inspections/" + i.id }, `${i.device} · ${fmtDate(i.due_on)}`))))))
        : el("p", { class: "muted" }, T("nothing")));
    } catch (err) { showError("insp-error", err); }
  });
})();
