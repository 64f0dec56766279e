/* One inspection: its checklist (with the latest readings to compare on site) as a form, recorded
 * with POST /api/v1/inspections/{id}/complete; a done one shows its record read-only. */
"use strict";

(() => {
  const ID = PAGE.inspection_id;

  function render(i) {
    document.getElementById("insp-title").textContent = `${T("insp.title")} #${i.id} · ${i.device}`;
    document.getElementById("insp-sub").textContent = `${i.customer} / ${i.site_name || i.site || ""} · ${T("insp.state")}: ${T("insp_state." + i.state)}` +
      ` · ${T("insp.due_on")} ${fmtDate(i.due_on)} · ${i.reason}` + (i.done_at ? ` · ${T("insp.done_at")} ${fmtTime(i.done_at)} ${T("insp.done_by")} ${i.done_by}` : "");
    document.getElementById("checklist-title").textContent = i.checklist_title;
    const done = new Map((i.results || []).map(r => [r.item, r]));
    const readOnly = i.state !== "planned" || !PAGE.staff;
    clear(document.getElementById("items"), i.items.map(it => {
      const r = done.get(it.id);
      return el("tr", { dataset: { item: it.id } },
        el("td", {}, it.text, it.reading !== null && it.reading !== undefined ? el("div", { class: "muted small" }, T("insp.reading", { value: Math.round(it.reading * 100) / 100 })) : null),
        el("td", {}, el("input", { type: "checkbox", name: "ok", checked: r ? r.ok : true, disabled: readOnly })),
        el("td", {}, el("input", { name: "value", size: 8, value: r && r.value !== null && r.value !== undefined ? r.value : (it.reading !== null && it.reading !== undefined ? Math.round(it.reading * 100) / 100 : ""), disabled: readOnly })),
        el("td", {}, el("input", { name: "note", maxlength: 2000, value: r ? r.note || "" : "", disabled: readOnly })));
    }));
    for (const id of ["finding", "finding-case", "notes"]) document.getElementById(id).disabled = readOnly;
    document.getElementById("notes").value = i.notes || "";
    const button = document.getElementById("complete");
    if (button) button.hidden = readOnly;
    document.getElementById("insp-done").hidden = i.state !== "done";
  }

  async function submit(ev) {
    ev.preventDefault();
    const results = [...document.querySelectorAll("#items tr")].map(tr => {
      const raw = tr.querySelector("[name=value]").value.trim();
      const num = Number(raw);
      return { item: tr.dataset.item, ok: tr.querySelector("[name=ok]").checked,
               value: raw === "" ? null : (Number.isFinite(num) ? num : raw), note: tr.querySelector("[name=note]").value };
    });
    const finding = document.getElementById("finding").value.trim();
    const body = { by: PAGE.user, results, notes: document.getElementById("notes").value,
                   findings: finding ? [{ text: finding, severity: "P3", open_case: document.getElementById("finding-case").checked }] : [] };
    try {
      render(await api(`/api/v1/inspections/${ID}/complete`, { method: "POST", body }));
      toast(T("insp.recorded"));
    } catch (err) { showError("insp-error", err); }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    document.getElementById("checklist").addEventListener("submit", submit);
    try { render(await api(`/api/v1/inspections/${ID}?` + qs({ lang: PAGE.lang }))); } catch (err) { showError("insp-error", err); }
  });
})();
