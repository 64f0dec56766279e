/* The service team's callbacks (回访): open ones soonest due first, each with the form to record what
 * the customer said; the latest answered ones below. */
"use strict";

(() => {
  function row(b) {
    const due = new Date(b.due_at) < new Date() ? el("span", { class: "tag overdue" }, fmtDate(b.due_at)) : fmtDate(b.due_at);
    return el("tr", { id: "cb-" + b.id },
      el("td", {}, due),
      el("td", {}, b.customer),
      el("td", {}, b.case_id ? el("a", { href: "/cases/" + b.case_id }, "#" + b.case_id) : T("callbacks.scheduled", { due: fmtDate(b.due_at) })),
      el("td", {}, callbackForm(b)));
  }

  function doneRow(b) {
    return el("tr", {},
      el("td", {}, fmtTime(b.done_at)),
      el("td", {}, b.customer),
      el("td", {}, b.case_id ? el("a", { href: "/cases/" + b.case_id }, "#" + b.case_id) : "—"),
      el("td", {}, `${b.satisfaction}/5 `, b.resolved === false ? el("span", { class: "tag overdue" }, T("callbacks.no")) : null,
        " ", el("span", { class: "muted small" }, (b.comment || "") + (b.done_by ? " · " + b.done_by : ""))));
  }

  async function load() {
    const [open, done] = await Promise.all([api("/api/v1/callbacks?state=open&limit=200"), api("/api/v1/callbacks?state=done&limit=20")]);
    clear(document.getElementById("callback-rows"), open.length ? open.map(row) : el("tr", {}, el("td", { colspan: 4, class: "muted" }, T("nothing"))));
    clear(document.getElementById("callbacks-done"), done.length ? done.map(doneRow) : el("tr", {}, el("td", { class: "muted" }, T("nothing"))));
  }

  document.addEventListener("DOMContentLoaded", () => load().catch(err => showError("callbacks-error", err)));
})();
