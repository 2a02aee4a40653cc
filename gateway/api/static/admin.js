"use strict";
// The administrator's page: every figure comes from /api/v1/admin/* with the administrator's
// token, which stays in this tab's sessionStorage. Every value is written as text
// (textContent), never as markup; the charts are SVG elements built here, styled by class.
(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const TOKEN = "admin-token";
  // The gateway's clock (which a demonstration may have moved) less this browser's, as last
  // seen in a stats answer: periods are counted back from the gateway's now.
  let clockOffset = 0;

  function token() { return sessionStorage.getItem(TOKEN) || ""; }

  async function api(path, method) {
    const resp = await fetch(path, {
      method: method || "GET",
      headers: { Authorization: "Bearer " + token() },
    });
    if (resp.status === 401 || resp.status === 403) { throw new Error("not an administrator token"); }
    if (!resp.ok) {
      const problem = await resp.json().catch(() => ({}));
      throw new Error(problem.detail || ("HTTP " + resp.status));
    }
    return resp.json();
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell == null ? "" : String(cell);
      tr.appendChild(td);
    }
    return tr;
  }

  function badge(text, kind) { return el("span", text, "badge " + kind); }

  // "2026-12-05T10:00:00.000000Z" -> "2026-12-05 10:00:00 UTC": every time says its zone.
  function utc(text) {
    if (!text) return "";
    const d = new Date(text);
    if (isNaN(d)) return String(text);
    return d.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function duration(ms) {
    const hours = Math.abs(ms) / 3600000;
    const words = hours >= 48 ? (hours / 24).toFixed(1) + " days" : hours.toFixed(1) + " hours";
    return ms < 0 ? words + " ago" : "in " + words;
  }

  function facts(dl, title, pairs) {
    dl.textContent = "";
    const caption = el("dt", title, "caption");
    dl.appendChild(caption);
    for (const [name, value, kind] of pairs) {
      dl.appendChild(el("dt", name));
      const dd = el("dd");
      if (kind) dd.appendChild(badge(value, kind)); else dd.textContent = value == null ? "" : String(value);
      dl.appendChild(dd);
    }
  }

  const CERT_STATUS = { ok: "ok", expiring: "warn", expired: "bad", revoked: "bad", "not-yet-valid": "bad" };

  async function certificates() {
    const r = await api("/api/v1/admin/certificates");
    const body = $("certs").tBodies[0];
    body.textContent = "";
    for (const c of r.certificates) {
      body.appendChild(row([
        c.owner, c.purpose, c.subject, utc(c.not_after), c.days_left.toFixed(2),
        badge(c.status, CERT_STATUS[c.status] || "unknown"),
      ]));
    }
    $("certs-summary").textContent = r.attention + " of " + r.certificates.length +
      " certificates need attention (expiring within " + r.expiry_warning_days +
      " days, expired, not yet valid or revoked)";
    $("certs-summary").className = r.attention ? "warn-text" : "";
  }

  async function directoryAndCrl() {
    const [d, c, t] = await Promise.all([
      api("/api/v1/admin/directory"), api("/api/v1/admin/crl"), api("/api/v1/admin/trust"),
    ]);
    facts($("directory"), "Directory", [
      ["Version", d.version],
      ["Published", utc(d.published)],
      ["Publisher", d.publisher.subject],
      ["Publisher fingerprint", d.publisher.fingerprint],
      ["Authorities", d.authorities.map((a) => a.code).join(", ")],
    ]);
    if (!c.configured) {
      facts($("crl"), "CRL", [["CRL", "not configured: revoked peers would be accepted", "bad"]]);
    } else {
      const now = Date.now() + clockOffset;
      const next = c.next_update ? new Date(c.next_update).getTime() : null;
      facts($("crl"), "CRL", [
        ["Number", c.number],
        ["Issued", utc(c.last_update) + " (" + duration(new Date(c.last_update).getTime() - now) + ")"],
        ["Next update", c.next_update ? utc(c.next_update) + " (" + duration(next - now) + ")" : "none stated"],
        ["Revoked certificates", c.revoked_serials.length],
      ]);
    }
    const last = t.last_refusal;
    const reloads = [["Applied", t.reloads], ["Refused", t.refusals, t.refusals ? "bad" : "ok"]];
    if (!last) reloads.push(["Last refusal", "none"]);
    else {
      reloads.push(["Last refusal", utc(last.time)], ["Asked by", last.trigger],
        ["Why", last.error], ["Register entry", "#" + last.register_sequence]);
    }
    facts($("reloads"), "Trust reloads since start", reloads);
  }

  async function peers() {
    $("peers-summary").textContent = "checking…";
    const r = await api("/api/v1/admin/peers");
    const body = $("peers").tBodies[0];
    body.textContent = "";
    for (const p of r.peers) {
      const tr = row([
        p.authority, p.endpoint,
        badge(p.reachable ? "reachable" : "unreachable", p.reachable ? "ok" : "bad"),
        p.fingerprint ? badge(p.pinned ? "pinned" : "NOT pinned", p.pinned ? "ok" : "bad") : "",
        p.subject, el("code", p.fingerprint || ""), p.error,
      ]);
      tr.dataset.authority = p.authority;
      body.appendChild(tr);
    }
    const bad = r.peers.filter((p) => p.outcome !== "ok").length;
    $("peers-summary").textContent = r.peers.length + " peers checked at " + utc(r.checked_at) +
      " (at most " + r.timeout_seconds + " s each); " + bad + " with a problem";
  }

  async function outbox() {
    const [queued, given] = await Promise.all([
      api("/api/v1/admin/outbox?state=queued&limit=1000"),
      api("/api/v1/admin/outbox?state=undeliverable&limit=1000"),
    ]);
    const items = given.items.concat(queued.items);
    const body = $("outbox").tBodies[0];
    body.textContent = "";
    for (const m of items) {
      const actions = el("span", null, "actions");
      actions.appendChild(action("Retry", m, "retry"));
      if (m.state === "queued") actions.appendChild(action("Cancel", m, "cancel"));
      const tr = row([
        badge(m.state, m.state === "queued" ? "warn" : "bad"), el("code", m.message_id), m.peer,
        m.type, m.reference, utc(m.created), m.attempts, utc(m.next_attempt_at),
        m.last_error, actions,
      ]);
      tr.dataset.messageId = m.message_id;
      tr.dataset.state = m.state;
      body.appendChild(tr);
    }
    $("outbox-empty").hidden = items.length > 0;
    const full = [queued, given].some((page) => page.items.length >= 1000);
    $("outbox-more").hidden = !full;  // the rest: `gateway outbox list` or the API's cursor
  }

  function action(label, message, verb) {
    const button = el("button", label);
    button.type = "button";
    button.setAttribute("aria-label", label + " message " + message.message_id + " to " + message.peer);
    button.addEventListener("click", async () => {
      button.disabled = true;
      const path = "/api/v1/admin/outbox/" + encodeURIComponent(message.message_id) + "/" + verb;
      try {
        const done = await api(path, "POST");
        $("outbox-status").textContent = done.message_id + ": " + done.previous_state + " -> " + done.state;
      } catch (e) {
        $("outbox-status").textContent = label + " refused: " + e.message;
      }
      await outbox().catch((e) => { $("outbox-status").textContent = "Error: " + e.message; });
    });
    return button;
  }

  // Charts: one SVG per figure, 760 units wide, scaled to the page by CSS.
  const W = 760, H = 180, LEFT = 36, BOTTOM = 22, TOP = 8;

  function svg(label, height) {
    const node = document.createElementNS(SVG, "svg");
    node.setAttribute("viewBox", "0 0 " + W + " " + height);
    node.setAttribute("role", "img");
    node.setAttribute("aria-label", label);
    const title = document.createElementNS(SVG, "title");
    title.textContent = label;
    node.appendChild(title);
    return node;
  }

  function shape(tag, attrs, className, tip) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (className) node.setAttribute("class", className);
    if (tip) {
      const title = document.createElementNS(SVG, "title");
      title.textContent = tip;
      node.appendChild(title);
    }
    return node;
  }

  function text(x, y, content, className) {
    const node = shape("text", { x: x, y: y }, className);
    node.textContent = content;
    return node;
  }

  // Bars per hour; `series` are stacked in order. Only hours with traffic get a bar.
  function hourly(target, label, hours, series) {
    const box = svg(label, H);
    const plotW = W - LEFT - 4, plotH = H - TOP - BOTTOM;
    const max = Math.max(1, ...hours.map((h) => series.reduce((s, k) => s + h[k], 0)));
    const step = plotW / Math.max(1, hours.length);
    box.appendChild(shape("line", { x1: LEFT, y1: TOP + plotH, x2: W - 4, y2: TOP + plotH }, "axis"));
    box.appendChild(shape("line", { x1: LEFT, y1: TOP, x2: LEFT, y2: TOP + plotH }, "axis"));
    box.appendChild(text(LEFT - 4, TOP + 8, String(max), "tick end"));
    box.appendChild(text(LEFT - 4, TOP + plotH, "0", "tick end"));
    hours.forEach((h, i) => {
      const x = LEFT + i * step;
      if (h.hour.slice(11, 13) === "00") {
        box.appendChild(shape("line", { x1: x, y1: TOP + plotH, x2: x, y2: TOP + plotH + 4 }, "axis"));
        box.appendChild(text(x + 2, H - 6, h.hour.slice(5, 10), "tick"));
      }
      let base = TOP + plotH;
      for (const k of series) {
        if (!h[k]) continue;
        const height = (h[k] / max) * plotH;
        base -= height;
        const bar = shape("rect", {
          x: x + step * 0.1, y: base, width: Math.max(1, step * 0.8), height: height,
          "data-hour": h.hour, "data-series": k, "data-count": h[k],
        }, "bar bar-" + k, utc(h.hour) + ": " + h[k] + " " + k);
        box.appendChild(bar);
      }
    });
    box.appendChild(text(W - 4, TOP + 8, "days at 00:00 UTC", "tick end"));
    target.textContent = "";
    target.appendChild(box);
  }

  // Horizontal bars, one per reason, largest first.
  function byReason(target, label, counts, kind) {
    const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
    target.textContent = "";
    if (!entries.length) { target.appendChild(el("p", "none in this period", "muted")); return; }
    const rowH = 20, height = entries.length * rowH + 8, labelW = 220;
    const box = svg(label, height);
    const max = Math.max(...entries.map((e) => e[1]));
    entries.forEach(([reason, n], i) => {
      const y = 4 + i * rowH;
      box.appendChild(text(labelW - 6, y + 14, reason, "tick end"));
      const width = Math.max(1, (n / max) * (W - labelW - 60));
      box.appendChild(shape("rect", { x: labelW, y: y + 3, width: width, height: rowH - 6,
        "data-reason": reason, "data-count": n }, "bar bar-" + kind, reason + ": " + n));
      box.appendChild(text(labelW + width + 4, y + 14, String(n), "tick"));
    });
    target.appendChild(box);
  }

  async function traffic() {
    const days = Number($("days").value);
    let path = "/api/v1/admin/stats";
    if (days !== 7) {  // 7 days is the gateway's default; a minute's margin for the others
      const since = new Date(Date.now() + clockOffset - days * 86400000 + 60000);
      path += "?since=" + encodeURIComponent(since.toISOString());
    }
    const r = await api(path);
    clockOffset = new Date(r.until).getTime() - Date.now();
    const t = r.totals;
    $("traffic-summary").textContent = "From " + utc(r.since) + " to " + utc(r.until) + ": " +
      t.sent + " sent, " + t.received + " received, " + t.failures + " failures, " +
      t.rejections + " rejections (" + r.entries_read + " register entries read)";
    hourly($("chart-messages"), "Messages sent and received per hour (UTC)", r.hours, ["sent", "received"]);
    hourly($("chart-failures"), "Failures per hour (UTC)", r.hours, ["failures"]);
    byReason($("chart-rejections"), "Rejections by reason", r.rejections_by_reason, "rejections");
    byReason($("chart-failure-reasons"), "Failures by reason", r.failures_by_reason, "failures");
  }

  async function refresh() {
    $("updated").textContent = "loading…";
    const parts = [certificates(), directoryAndCrl(), outbox(), traffic(), peers()];
    const results = await Promise.allSettled(parts);
    const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason.message);
    $("updated").textContent = failed.length
      ? "Some parts failed: " + failed.join("; ")
      : "Updated " + utc(new Date().toISOString());
  }

  async function login(e) {
    if (e) e.preventDefault();
    if (e) sessionStorage.setItem(TOKEN, $("token").value);
    try {
      await api("/api/v1/admin/trust");
      $("login").hidden = true;
      $("main").hidden = false;
      $("login-error").textContent = "";
      await refresh();
    } catch (err) {
      sessionStorage.removeItem(TOKEN);
      $("login-error").textContent = "Log in failed: " + err.message;
    }
  }

  $("login-form").addEventListener("submit", login);
  $("refresh").addEventListener("click", refresh);
  $("check-peers").addEventListener("click", () => peers().catch((e) => {
    $("peers-summary").textContent = "Error: " + e.message;
  }));
  $("traffic-form").addEventListener("submit", (e) => {
    e.preventDefault();
    traffic().catch((err) => { $("traffic-summary").textContent = "Error: " + err.message; });
  });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN); location.reload(); });
  if (token()) login(null);
})();
