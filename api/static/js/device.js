/* A device: its metric charts (uPlot, downsampled by the API), health, cases, next inspection,
 * archive, events, timeline, and for the service team the remote diagnostics. */
"use strict";

(() => {
  const ID = PAGE.device_id;
  const base = "/api/v1/devices/" + ID;
  //  range → seconds and step: about 120–360 points; steps of 5 min and more over a day use the rollup
  const RANGES = { "1h": [3600, "30s"], "24h": [86400, "5m"], "7d": [7 * 86400, "30m"], "30d": [30 * 86400, "2h"] };
  let range = "1h", plot = null;

  async function header() {
    const d = await api(base);
    clear(document.getElementById("device-status"), statusBadge(d.status));
    document.getElementById("device-sub").textContent =
      `${d.customer} / ${d.site} · ${d.kind} · ${T("device.agent")} ${d.agent}` +
      (d.status_since ? " · " + T("device.since", { time: fmtTime(d.status_since) }) : "") +
      (d.status_detail ? " · " + d.status_detail : "");
    const sel = document.getElementById("metric");
    const keys = Object.keys(d.metrics || {}).sort();
    clear(sel, keys.map(k => el("option", { value: k }, k)));
    if (!keys.length) document.getElementById("chart-info").textContent = T("device.no_metrics");
    return keys;
  }

  async function chart() {
    const metric = document.getElementById("metric").value;
    const box = document.getElementById("chart");
    if (!metric) return;
    const [span, step] = RANGES[range];
    const end = Math.floor(Date.now() / 1000), start = end - span;
    try {
      const s = await api(`${base}/metrics?` + qs({ metric, start, end, step }));
      const t = s.points.map(p => new Date(p.time).getTime() / 1000);
      const data = [t, s.points.map(p => p.avg), s.points.map(p => p.min), s.points.map(p => p.max)];
      if (plot) { plot.destroy(); plot = null; }
      clear(box);
      box.dataset.points = String(s.points.length);
      box.dataset.metric = s.metric;
      document.getElementById("chart-info").textContent = s.points.length
        ? T("device.points", { n: s.points.length, step: fmtDuration(s.step) }) + ` · ${s.source}`
        : T("device.no_data");
      const unit = s.unit ? ` (${s.unit})` : "";
      plot = new uPlot({
        width: Math.max(320, box.clientWidth || 640), height: 260,
        scales: { x: { time: true, range: [start, end] } },
        series: [{}, { label: s.metric + unit, stroke: "#2563eb", width: 2 },
                 { label: "min", stroke: "#93c5fd", width: 1, dash: [4, 4] },
                 { label: "max", stroke: "#1e3a8a", width: 1, dash: [4, 4] }],
        axes: [{}, { size: 60 }],
      }, data, box);
    } catch (err) {
      box.dataset.points = "0";
      document.getElementById("chart-info").textContent = T("error") + ": " + err.message;
    }
  }

  async function health() {
    const h = await api(`${base}/health`);
    clear(document.getElementById("health-score"), healthBadge(h.score));
    const parts = (h.breakdown || []).map(p => el("li", {}, el("b", {}, `−${Math.round(p.points)} `), p.text));
    clear(document.getElementById("health-parts"), parts.length ? parts : el("li", { class: "muted" }, h.score === null ? T("device.health_none") : T("none")));
  }

  function logItems(rows, text) {
    return rows.length ? rows.map(r => el("li", {}, el("time", {}, fmtTime(r.time)), " ", el("span", { class: "tag" }, r.kind), " ", text(r)))
      : [el("li", { class: "muted" }, T("nothing"))];
  }

  async function lists() {
    const [events, timeline, cases, planned] = await Promise.all([
      api(`${base}/events?limit=30`), api(`${base}/timeline?limit=30`),
      api("/api/v1/cases?" + qs({ device_id: ID, active: true, sort: "urgency", limit: 20 })),
      api("/api/v1/inspections?" + qs({ device_id: ID, state: "planned", limit: 1 })),
    ]);
    clear(document.getElementById("events"), logItems(events, r => r.text || JSON.stringify(r.detail)));
    clear(document.getElementById("timeline"), logItems(timeline, r => r.case_id
      ? el("a", { href: "/cases/" + r.case_id }, r.text) : r.text));
    clear(document.getElementById("device-cases"), cases.items.length ? cases.items.map(c => el("li", {}, caseLink(c), " ", c.title))
      : el("li", { class: "muted" }, T("none")));
    const next = planned[0];
    clear(document.getElementById("next-inspection"), next
      ? el("p", {}, el("a", { href: "/inspections/" + next.id }, fmtDate(next.due_on)), " · ", next.reason)
      : el("p", { class: "muted" }, T("device.no_inspection")));
  }

  async function archive() {
    const box = document.getElementById("archive");
    try {
      const a = await api(`${base}/archive`);
      const facts = [["brand", a.brand], ["model", a.model], ["serial", a.serial], ["location", a.location],
        ["firmware", a.firmware], ["accepted_on", a.accepted_on], ["warranty_end", a.warranty_end],
        ["warranty", a.warranty ? T("warranty." + a.warranty) : null]];
      clear(box, facts.flatMap(([k, v]) => [el("dt", {}, T("device." + k)), el("dd", {}, v === null || v === undefined ? "—" : String(v))]));
    } catch (err) { clear(box, el("dd", { class: "muted" }, err.status === 404 ? T("none") : err.message)); }
  }

  // ------------------------------------------------------------ remote diagnostics (service team)
  function diagArgs(action) {
    const v = id => document.getElementById(id).value.trim();
    if (action === "ping") {  // with a port: a TCP connect check (no ping program needed on the agent)
      const port = parseInt(v("diag-port"), 10);
      return port ? { host: v("diag-host"), port } : { host: v("diag-host") };
    }
    if (action === "log_tail") return { lines: parseInt(v("diag-lines"), 10) || 20 };
    if (action === "poll_now") return { target: v("diag-target") };
    if (action === "snmp_get" || action === "snmp_walk") {
      const oids = v("diag-oids").split(",").map(s => s.trim()).filter(Boolean);
      return action === "snmp_get" ? { target: v("diag-target"), oids } : { target: v("diag-target"), oid: oids[0] || "" };
    }
    return {};
  }

  function diagFields() {
    const action = document.getElementById("diag-action").value;
    for (const label of document.querySelectorAll("#diag-form [data-for]")) label.hidden = !label.dataset.for.split(" ").includes(action);
  }

  async function diagnose(ev) {
    ev.preventDefault();
    const agent = PAGE.agent_id, action = document.getElementById("diag-action").value;
    const status = document.getElementById("diag-status"), out = document.getElementById("diag-result");
    const button = document.getElementById("diag-run");
    button.disabled = true; out.hidden = true;
    status.dataset.state = "sent";
    status.textContent = T("device.diag_sent");
    try {
      let d = await api(`/api/v1/agents/${agent}/diagnostics`, { method: "POST", body: { action, args: diagArgs(action), requested_by: PAGE.user } });
      const until = Date.now() + 130000;
      while (d.status === "sent" && Date.now() < until) {
        await new Promise(r => setTimeout(r, 1000));
        d = await api(`/api/v1/agents/${agent}/diagnostics/${d.request_id}`);
      }
      status.dataset.state = d.status;
      status.textContent = T("device.diag_" + d.status) + (d.error ? ": " + d.error : "") + (d.finished_at ? " · " + fmtTime(d.finished_at) : "");
      if (d.result !== null && d.result !== undefined) { out.textContent = JSON.stringify(d.result, null, 2); out.hidden = false; }
    } catch (err) {
      status.dataset.state = "error";
      status.textContent = T("error") + ": " + err.message;
    } finally { button.disabled = false; }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    for (const b of document.querySelectorAll(".range")) b.addEventListener("click", () => {
      range = b.dataset.range;
      for (const o of document.querySelectorAll(".range")) o.classList.toggle("on", o === b);
      chart();
    });
    document.getElementById("metric").addEventListener("change", chart);
    const form = document.getElementById("diag-form");
    if (form) { form.addEventListener("submit", diagnose); document.getElementById("diag-action").addEventListener("change", diagFields); diagFields(); }
    try { await header(); } catch (err) { toast(err.message, true); return; }
    chart();
    health().catch(err => toast(err.message, true));
    lists().catch(err => toast(err.message, true));
    archive();
  });
})();
