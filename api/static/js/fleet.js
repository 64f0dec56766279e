/* The fleet table (console and portal): one page of devices from GET /api/v1/devices, kept live by the
 * server-sent events of GET /api/v1/stream/devices for exactly the devices on the page. */
"use strict";

const Fleet = (() => {
  const LIMIT = 50;
  const state = { offset: 0, total: 0, filters: {}, rows: new Map(), source: null };
  const portal = !!document.getElementById("portal-devices");
  const tbody = document.getElementById("fleet-rows");

  // the readings an engineer looks at first, by kind of device; the rest alphabetically after them
  const KEY_METRICS = ["cpu_percent", "mem_percent", "disk_used_percent", "battery_charge_percent",
    "battery_runtime_seconds", "input_voltage", "output_load_percent", "temperature_celsius", "temp_c",
    "humidity_percent", "if_in_bps", "if_out_bps", "if_errors", "toner_percent", "sessions", "load"];

  function rank(key) {
    const name = key.split("{")[0];
    const i = KEY_METRICS.indexOf(name);
    return i < 0 ? KEY_METRICS.length : i;
  }

  /** 81087688704 B → "81.1 GB", 148450882 bit/s → "148 Mbit/s", 2821 s → "47 min". */
  function human(value, unit) {
    const scaled = (v, steps, base, units) => {
      let i = 0;
      while (Math.abs(v) >= base && i < steps.length - 1) { v /= base; i++; }
      return `${Math.abs(v) >= 100 ? Math.round(v) : Math.round(v * 10) / 10} ${steps[i]}${units}`;
    };
    if (unit === "B") return scaled(value, ["", "k", "M", "G", "T", "P"], 1000, "B");
    if (unit === "bit/s") return scaled(value, ["", "k", "M", "G", "T"], 1000, "bit/s");
    if (unit === "s" && value >= 120) return fmtDuration(value);
    const v = Math.abs(value) >= 100 ? Math.round(value) : Math.round(value * 10) / 10;
    return `${v}${unit ? " " + unit : ""}`;
  }

  function metricsCell(metrics) {
    const keys = Object.keys(metrics || {}).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)).slice(0, 3);
    if (!keys.length) return el("span", { class: "muted" }, "—");
    return el("span", { class: "metrics" }, keys.map(k => el("span", { class: "metric", title: k },
      `${k.replace(/_(percent|bps|celsius|seconds)$/, "")} ${human(metrics[k].value, metrics[k].unit)}`)));
  }

  function renderRow(d) {
    const cells = [el("td", {}, el("a", { href: "/devices/" + d.id, class: "device-link" }, d.name), el("div", { class: "muted small" }, d.kind))];
    if (!portal) cells.push(el("td", {}, d.customer, el("div", { class: "muted small" }, d.site)));
    else cells.push(el("td", {}, d.site));
    cells.push(el("td", { class: "c-status" }, statusBadge(d.status)));
    cells.push(el("td", { class: "c-health" }, healthBadge(d.health)));
    cells.push(el("td", { class: "c-case" }, caseLink(d.open_case)));
    cells.push(el("td", { class: "c-seen", dataset: { seen: d.last_seen || "" } }, ago(d.last_seen)));
    if (!portal) cells.push(el("td", { class: "c-metrics" }, metricsCell(d.metrics)));
    return el("tr", { id: "device-" + d.id, dataset: { id: d.id, status: d.status } }, cells);
  }

  function apply(change) {
    const row = document.getElementById("device-" + change.id);
    if (!row) return;
    const d = Object.assign(state.rows.get(change.id) || {}, change);
    state.rows.set(change.id, d);
    if (row.dataset.status !== d.status) row.classList.add("changed");
    row.dataset.status = d.status;
    clear(row.querySelector(".c-status"), statusBadge(d.status));
    clear(row.querySelector(".c-health"), healthBadge(d.health));
    clear(row.querySelector(".c-case"), caseLink(d.open_case));
    const seen = row.querySelector(".c-seen");
    seen.dataset.seen = d.last_seen || "";
    seen.textContent = ago(d.last_seen);
    const readings = row.querySelector(".c-metrics");
    if (readings && change.metrics) clear(readings, metricsCell(d.metrics));
  }

  function live(on) {
    const badge = document.getElementById("live");
    if (!badge) return;
    badge.dataset.state = on ? "on" : "off";
    badge.textContent = on ? T("fleet.live") : T("fleet.live_off");
  }

  function stream(ids) {
    if (state.source) state.source.close();
    if (!ids.length) { live(false); return; }
    const src = new EventSource("/api/v1/stream/devices?" + qs({ ids: ids.join(",") }));
    state.source = src;
    src.addEventListener("hello", () => live(true));
    src.addEventListener("devices", ev => { for (const d of JSON.parse(ev.data).items) apply(d); });
    src.addEventListener("unavailable", () => live(false));
    src.addEventListener("available", () => live(true));
    src.addEventListener("bye", ev => {
      live(false);
      // the session ended (logout elsewhere, revoked, user disabled): back to the login form
      if (JSON.parse(ev.data).reason === "logged_out") { src.close(); api("/api/v1/auth/me").catch(() => {}); }
    });
    src.onerror = () => live(false);  // EventSource reconnects by itself
  }

  async function load() {
    try {
      const page = await api("/api/v1/devices?" + qs(Object.assign({ limit: LIMIT, offset: state.offset }, state.filters)));
      state.total = page.total;
      state.rows = new Map(page.items.map(d => [d.id, d]));
      clear(tbody, page.items.length ? page.items.map(renderRow)
        : el("tr", {}, el("td", { colspan: portal ? 6 : 7, class: "muted" }, T("nothing"))));
      const last = Math.min(state.offset + LIMIT, page.total);
      document.getElementById("page-info").textContent =
        T("page_of", { first: page.total ? state.offset + 1 : 0, last, total: page.total });
      document.getElementById("prev").disabled = state.offset === 0;
      document.getElementById("next").disabled = last >= page.total;
      stream(page.items.map(d => d.id));
    } catch (err) { showError(portal ? "portal-error" : "fleet-error", err); }
  }

  async function fillFilters() {
    const cust = document.getElementById("f-customer");
    if (!cust) return;
    try {
      for (const c of await api("/api/v1/customers")) cust.append(el("option", { value: c.key }, c.name || c.key));
    } catch (err) { showError("fleet-error", err); }
  }

  async function fillSites(customer) {
    const sel = document.getElementById("f-site");
    clear(sel, el("option", { value: "" }, T("all")));
    try {
      for (const s of await api("/api/v1/sites?" + qs({ customer }))) sel.append(el("option", { value: `${s.customer}/${s.key}` }, `${s.customer} / ${s.name || s.key}`));
    } catch (err) { showError("fleet-error", err); }
  }

  function init() {
    if (!tbody) return;
    const form = document.getElementById("filters");
    if (form) {
      form.addEventListener("change", ev => {
        if (ev.target.id === "f-customer") { document.getElementById("f-site").value = ""; fillSites(ev.target.value); }
        const f = Object.fromEntries(new FormData(form).entries());
        if (f.site) {  // a site key is unique within its customer only: the option carries both
          const [customer, site] = f.site.split("/");
          f.site = site;
          f.customer = f.customer || customer;
        }
        state.filters = f;
        state.offset = 0;
        load();
      });
      form.addEventListener("submit", ev => ev.preventDefault());
      fillFilters();
      fillSites("");
    }
    document.getElementById("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - LIMIT); load(); });
    document.getElementById("next").addEventListener("click", () => { state.offset += LIMIT; load(); });
    everySecond(() => { for (const td of tbody.querySelectorAll(".c-seen")) td.textContent = ago(td.dataset.seen); });
    load();
  }

  document.addEventListener("DOMContentLoaded", init);
  return { state, load };
})();
