"use strict";
// The auditor's page: everything comes from /api/v1/register with the auditor's token, which
// stays in this tab's sessionStorage. No payload is ever shown: the register holds none.
(function () {
  const $ = (id) => document.getElementById(id);
  const columns = ["sequence", "time", "event", "direction", "peer", "message_type", "reference", "status", "reason"];
  let cursor = "0";
  let rows = [];

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

  function filters() {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData($("search")).entries()) {
      if (!value) continue;
      if (name === "since" || name === "until") { params.set(name, value + ":00Z"); }
      else { params.set(name, value); }
    }
    return params;
  }

  function render(append) {
    const body = $("rows");
    if (!append) body.textContent = "";
    for (const entry of rows.slice(append ? body.children.length : 0)) {
      const tr = document.createElement("tr");
      for (const c of columns) {
        const td = document.createElement("td");
        td.textContent = entry[c] == null ? "" : String(entry[c]);
        tr.appendChild(td);
      }
      tr.addEventListener("click", () => { $("detail").textContent = JSON.stringify(entry, null, 2); });
      body.appendChild(tr);
    }
    $("count").textContent = rows.length + " entries shown";
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
      render(append);
    } catch (e) { $("detail").textContent = "Error: " + e.message; }
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

  async function csv() {
    const resp = await api("/api/v1/register.csv?" + filters());
    const blob = await resp.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "register.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  async function login(e) {
    if (e) e.preventDefault();
    if (e) sessionStorage.setItem("auditor-token", $("token").value);
    try {
      await api("/api/v1/register?limit=1");
      $("login").hidden = true;
      $("main").hidden = false;
      await verify();
      await search(false);
    } catch (err) {
      sessionStorage.removeItem("auditor-token");
      $("login-error").textContent = "Log in failed: " + err.message;
    }
  }

  $("login-form").addEventListener("submit", login);
  $("search").addEventListener("submit", (e) => { e.preventDefault(); search(false); });
  $("more").addEventListener("click", () => search(true));
  $("verify").addEventListener("click", verify);
  $("csv").addEventListener("click", csv);
  $("logout").addEventListener("click", () => { sessionStorage.clear(); location.reload(); });
  if (token()) login(null);
})();
