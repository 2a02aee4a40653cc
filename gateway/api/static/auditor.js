"use strict";
// The auditor's console. Everything comes from the auditor's part of the API with the
// auditor's token, which stays in this tab's sessionStorage. Every value is written as text
// (textContent), never as markup; no payload is ever shown: the register holds none and the
// case view gives metadata and proofs only.
(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const columns = ["sequence", "time", "event", "direction", "peer", "message_type", "reference", "status", "reason", "receipt_time"];
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local";
  let cursor = "0";
  let rows = [];
  let selected = null;
  let currentCase = null;

  function token() { return sessionStorage.getItem("auditor-token") || ""; }

  async function api(path) {
    const resp = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
    if (resp.status === 401 || resp.status === 403) { throw new Error("not an auditor token"); }
    if (!resp.ok) {
      const problem = await resp.json().catch(() => ({}));
      throw new Error(problem.detail || ("HTTP " + resp.status));
    }
    return resp;
  }

  function fail(e) { $("error").textContent = "Error: " + e.message; }

  async function download(path, name) {
    try {
      const resp = await api(path);
      const blob = await resp.blob();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
      return resp;
    } catch (e) { fail(e); return null; }
  }

  function cell(tr, value) {
    const td = document.createElement("td");
    td.textContent = value == null ? "" : String(value);
    tr.appendChild(td);
    return td;
  }

  function fill(select, values) {
    for (const v of values) {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = v;
      select.appendChild(o);
    }
  }

  // --- the register ---

  function filters() {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData($("search")).entries()) {
      if (!value) continue;
      // datetime-local is the browser's local time: converted to the instant it names.
      if (name === "since" || name === "until") { params.set(name, new Date(value).toISOString()); }
      else { params.set(name, value); }
    }
    return params;
  }

  function select(entry) {
    selected = entry;
    $("detail").textContent = JSON.stringify(entry, null, 2);
    $("open-entry-case").hidden = !entry.reference;
  }

  function renderRegister(append) {
    const body = $("rows");
    if (!append) body.textContent = "";
    for (const entry of rows.slice(append ? body.children.length : 0)) {
      const tr = document.createElement("tr");
      tr.className = "selectable";
      tr.tabIndex = 0;
      for (const c of columns) cell(tr, entry[c]);
      tr.addEventListener("click", () => select(entry));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") select(entry); });
      body.appendChild(tr);
    }
    const counts = {};
    for (const r of rows) counts[r.event] = (counts[r.event] || 0) + 1;
    const totals = $("register-totals");
    totals.textContent = "";
    const shown = document.createElement("div");
    const b = document.createElement("b");
    b.textContent = String(rows.length);
    shown.append(b, " entries shown");
    totals.appendChild(shown);
    for (const [event, n] of Object.entries(counts).sort((x, y) => y[1] - x[1])) {
      const d = document.createElement("div");
      d.textContent = event + ": " + n;
      totals.appendChild(d);
    }
  }

  async function search(append) {
    const params = filters();
    params.set("cursor", append ? cursor : "0");
    params.set("limit", "100");
    try {
      const page = await (await api("/api/v1/register?" + params)).json();
      rows = append ? rows.concat(page.items) : page.items;
      cursor = page.next_cursor;
      $("more").hidden = page.items.length < 100;
      $("error").textContent = "";
      renderRegister(append);
    } catch (e) { fail(e); }
  }

  async function verify() {
    const badge = $("badge");
    try {
      const r = await (await api("/api/v1/register/integrity")).json();
      badge.className = "badge " + (r.intact ? "ok" : "bad");
      // The coverage says what vouches for which entries: signed checkpoints, the peers'
      // witnesses the gateway holds, and how many entries only the local chain vouches for.
      badge.textContent = r.intact
        ? "intact: " + r.entries + " entries, " + r.checkpoints + " signed checkpoints, " +
          r.witnesses + " peer witnesses (" + r.verified_at + "); " + r.coverage +
          (r.warning ? "; warning: " + r.warning : "")
        : "NOT intact at sequence " + r.sequence + ": " + r.reason +
          " (checked against " + r.witnesses + " peer witnesses)";
    } catch (e) { badge.className = "badge bad"; badge.textContent = "verification failed: " + e.message; }
  }

  let csvUpto = null;

  async function csv() {
    const params = filters();
    const resp = await download("/api/v1/register.csv?" + params, "register.csv");
    if (resp) csvUpto = resp.headers.get("X-Register-Upto");
  }

  async function csvSignature() {
    const params = filters();
    if (csvUpto) params.set("upto", csvUpto);
    await download("/api/v1/register.csv.sig?" + params, "register.csv.sig");
  }

  async function rangeBundle(e) {
    e.preventDefault();
    const data = new FormData($("range"));
    const params = new URLSearchParams({ from: String(data.get("from")) });
    if (data.get("to")) params.set("to", String(data.get("to")));
    await download("/api/v1/audit/export?" + params, "register-" + params.get("from") + ".bundle");
  }

  // --- a case ---

  function showTab(name) {
    for (const t of ["register", "case"]) {
      $("tab-" + t).setAttribute("aria-selected", String(t === name));
      $(t + "-view").hidden = t !== name;
    }
  }

  function svg(tag, attrs, parent) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (parent) parent.appendChild(el);
    return el;
  }

  function svgText(parent, x, y, text, cls) {
    const t = svg("text", { x: x, y: y, class: cls || "" }, parent);
    t.textContent = text;
    return t;
  }

  function dayEnd(date) { return Date.parse(date + "T23:59:59Z"); }

  function timeline(c) {
    const box = $("timeline");
    while (box.lastChild && box.lastChild.nodeName !== "title") box.removeChild(box.lastChild);
    const stamps = [];
    for (const m of c.messages) {
      stamps.push(Date.parse(m.sent_at));
      if (m.receipt_time) stamps.push(Date.parse(m.receipt_time));
    }
    for (const d of c.deadlines) { stamps.push(Date.parse(d.started_at), dayEnd(d.due_date)); }
    if (!stamps.length) return;
    const lo = Math.min(...stamps);
    const hi = Math.max(...stamps, lo + 60000);
    const width = Math.max(box.clientWidth || 0, 700);
    const left = 190, right = 20, row = 20, top = 16;
    const x = (t) => left + (t - lo) / (hi - lo) * (width - left - right);
    const height = top + row * (c.messages.length + c.deadlines.length) + 34;
    box.setAttribute("height", String(height));
    box.setAttribute("viewBox", "0 0 " + width + " " + height);
    let y = top;
    for (const m of c.messages) {
      const g = svg("g", { class: "tl-message", "data-type": m.type, "data-message-id": m.message_id, "data-receipt": m.receipt_time || "" }, box);
      const title = svg("title", {}, g);
      title.textContent = m.type + " (" + m.direction + ", " + m.reference + "): sent " + m.sent_at + "; received " + (m.receipt_time || "not yet acknowledged");
      svgText(g, 4, y + 4, m.type + (m.direction === "in" ? " \u2190 " : " \u2192 ") + m.peer, "tl-label");
      const sent = x(Date.parse(m.sent_at));
      if (m.receipt_time) {
        const got = x(Date.parse(m.receipt_time));
        svg("line", { x1: sent, y1: y, x2: got, y2: y, class: "tl-link" }, g);
        svg("circle", { cx: got, cy: y, r: 5, class: "tl-receipt" }, g);
      }
      svg("circle", { cx: sent, cy: y, r: 5, class: "tl-sent" }, g);
      y += row;
    }
    for (const d of c.deadlines) {
      const state = d.state === "expired" ? "bad" : d.state === "open" || d.state === "suspended" ? "warn" : "ok";
      const g = svg("g", { class: "tl-deadline " + state, "data-rule": d.rule, "data-state": d.state }, box);
      const title = svg("title", {}, g);
      title.textContent = d.rule + " (" + (d.article || "article unknown") + "): from " + d.started_at + " to " + d.due_date + ", " + d.state + (d.consequence ? ", " + d.consequence : "");
      svgText(g, 4, y + 4, d.rule, "tl-label");
      const x1 = x(Date.parse(d.started_at));
      const x2 = x(dayEnd(d.due_date));
      svg("rect", { x: x1, y: y - 6, width: Math.max(x2 - x1, 2), height: 12, rx: 3, class: "tl-bar" }, g);
      svgText(g, Math.min(x2 + 4, width - 80), y + 4, d.due_date, "tl-due");
      y += row;
    }
    svg("line", { x1: left, y1: y, x2: width - right, y2: y, class: "tl-axis" }, box);
    svgText(box, left, y + 16, new Date(lo).toISOString().slice(0, 16).replace("T", " ") + " UTC", "tl-tick");
    svgText(box, width - right - 130, y + 16, new Date(hi).toISOString().slice(0, 16).replace("T", " ") + " UTC", "tl-tick");
  }

  function articles(m) {
    const parts = [m.legal_basis || "basis unknown"];
    if (m.form_article) parts.push(m.form_article);
    for (const a of m.articles) {
      parts.push(a.effect + " " + a.rule + " (" + (a.article || "?") + (a.verified === false ? ", unverified" : "") + ")");
    }
    return parts.join("; ");
  }

  function fact(parent, name, value) {
    const d = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = value == null ? "\u2014" : String(value);
    d.append(dt, dd);
    parent.appendChild(d);
  }

  function renderCase(c) {
    currentCase = c;
    $("case").hidden = false;
    $("case-ref").textContent = c.reference;
    $("report-title").textContent = "Case report " + c.reference + ", gateway " + c.authority + ", generated " + c.generated_at + " (UTC)";
    const facts = $("case-facts");
    facts.textContent = "";
    fact(facts, "Legal basis", c.legal_basis);
    fact(facts, "Kind", c.kind);
    fact(facts, "State", c.state);
    fact(facts, "Requesting", c.requesting);
    fact(facts, "Requested", c.requested);
    fact(facts, "Opened (UTC)", c.opened_at);
    fact(facts, "Register entries", c.register_span ? "#" + c.register_span.first + " to #" + c.register_span.last : null);
    const totals = $("case-totals");
    totals.textContent = "";
    for (const [k, v] of Object.entries(c.totals)) {
      const d = document.createElement("div");
      const b = document.createElement("b");
      b.textContent = String(v);
      d.append(b, " " + k.replace(/_/g, " "));
      totals.appendChild(d);
    }
    const mbody = $("case-messages").tBodies[0];
    mbody.textContent = "";
    for (const m of c.messages) {
      const tr = document.createElement("tr");
      tr.dataset.messageId = m.message_id;
      cell(tr, m.sent_at);
      cell(tr, m.receipt_time || "not acknowledged");
      cell(tr, m.direction);
      cell(tr, m.type);
      cell(tr, m.reference);
      cell(tr, m.peer);
      cell(tr, m.acknowledgement ? m.acknowledgement.status + (m.acknowledgement.reason ? " (" + m.acknowledgement.reason.code + ")" : "") + ", signed by " + (m.direction === "out" ? m.peer : c.authority) : m.state);
      cell(tr, articles(m));
      const td = cell(tr, "");
      td.className = "no-print";
      if (m.acknowledgement) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "proof";
        b.textContent = "Acknowledgement";
        b.setAttribute("aria-label", "Download the signed acknowledgement of " + m.type + " " + m.message_id);
        b.addEventListener("click", () => download("/api/v1/audit/acknowledgements/" + encodeURIComponent(m.message_id), "acknowledgement-" + m.message_id + ".xml"));
        td.appendChild(b);
      }
      mbody.appendChild(tr);
    }
    const dbody = $("case-deadlines").tBodies[0];
    dbody.textContent = "";
    for (const d of c.deadlines) {
      const tr = document.createElement("tr");
      cell(tr, d.rule);
      cell(tr, (d.article || "unknown") + (d.verified === false ? " (unverified)" : ""));
      cell(tr, d.acting);
      cell(tr, d.started_at);
      cell(tr, d.due_date);
      cell(tr, d.state);
      cell(tr, d.consequence);
      dbody.appendChild(tr);
    }
    const ebody = $("case-entries").tBodies[0];
    ebody.textContent = "";
    for (const e of c.entries) {
      const tr = document.createElement("tr");
      for (const k of ["sequence", "time", "event", "direction", "type", "form_reference", "status", "reason", "receipt_time"]) cell(tr, e[k]);
      ebody.appendChild(tr);
    }
    timeline(c);
  }

  async function openCase(reference) {
    showTab("case");
    $("case-reference").value = reference;
    $("case-error").textContent = "";
    try {
      const c = await (await api("/api/v1/audit/cases/" + encodeURIComponent(reference))).json();
      renderCase(c);
      history.replaceState(null, "", "#case=" + encodeURIComponent(reference));
    } catch (e) {
      $("case").hidden = true;
      $("case-error").textContent = "Cannot open case: " + e.message;
    }
  }

  // --- session ---

  async function loadChoices() {
    const c = await (await api("/api/v1/audit/choices")).json();
    $("authority").textContent = "gateway " + c.authority;
    fill($("choice-peer"), c.peers);
    fill($("choice-type"), c.types);
    fill($("choice-event"), c.events);
  }

  async function login(e) {
    if (e) e.preventDefault();
    if (e) sessionStorage.setItem("auditor-token", $("token").value);
    try {
      await api("/api/v1/register?limit=1");
      $("login").hidden = true;
      $("main").hidden = false;
      await loadChoices();
      await verify();
      await search(false);
      const wanted = new URLSearchParams(location.hash.slice(1)).get("case");
      if (wanted) await openCase(wanted);
    } catch (err) {
      sessionStorage.removeItem("auditor-token");
      $("login-error").textContent = "Log in failed: " + err.message;
    }
  }

  for (const span of document.querySelectorAll(".zone")) span.textContent = "local time, " + zone;
  $("login-form").addEventListener("submit", login);
  $("search").addEventListener("submit", (e) => { e.preventDefault(); search(false); });
  $("more").addEventListener("click", () => search(true));
  $("verify").addEventListener("click", verify);
  $("csv").addEventListener("click", csv);
  $("csv-sig").addEventListener("click", csvSignature);
  $("cert").addEventListener("click", () => download("/api/v1/audit/signing-certificate", "signing-certificate.pem"));
  $("range").addEventListener("submit", rangeBundle);
  $("tab-register").addEventListener("click", () => showTab("register"));
  $("tab-case").addEventListener("click", () => showTab("case"));
  $("open-entry-case").addEventListener("click", () => { if (selected && selected.reference) openCase(selected.reference); });
  $("case-form").addEventListener("submit", (e) => { e.preventDefault(); openCase($("case-reference").value.trim()); });
  $("case-bundle").addEventListener("click", () => {
    if (currentCase) download("/api/v1/audit/export?case=" + encodeURIComponent(currentCase.reference), "case-" + currentCase.reference + ".bundle");
  });
  $("case-print").addEventListener("click", () => window.print());
  $("logout").addEventListener("click", () => { sessionStorage.clear(); location.reload(); });
  if (token()) login(null);
})();
