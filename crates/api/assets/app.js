// The launcher page of Tycho's HTTP API: sign in with a bearer token, launch Systems from a short form,
// follow them live (GET …/watch/systems, server-sent events read through fetch(), since EventSource cannot
// send an Authorization header), stop and restart them. No framework, no build step, nothing external.
"use strict";
(function () {
  const TOKEN_KEY = "tycho.token";
  const NS_KEY = "tycho.namespace";
  const EXAMPLES = {
    nginx: { image: "nginx", ports: "80", env: "" },
    jupyter: { image: "quay.io/jupyter/base-notebook", ports: "8888", env: "" },
    redis: { image: "redis", ports: "6379", env: "" },
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    signin: $("signin"),
    signinForm: $("signin-form"),
    token: $("token"),
    signinError: $("signin-error"),
    app: $("app"),
    who: $("who"),
    whoami: $("whoami"),
    signout: $("signout"),
    nsForm: $("ns-form"),
    namespace: $("namespace"),
    stream: $("stream"),
    notice: $("notice"),
    actionError: $("action-error"),
    body: $("systems-body"),
    empty: $("systems-empty"),
    launchForm: $("launch-form"),
    launchError: $("launch-error"),
    launchSubmit: $("launch-submit"),
    image: $("launch-image"),
    name: $("launch-name"),
    ports: $("launch-ports"),
    env: $("launch-env"),
    session: $("launch-session"),
    duration: $("launch-duration"),
  };

  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let namespace = sessionStorage.getItem(NS_KEY) || "default";
  /** name → {view, row} */
  const rows = new Map();
  /** The running watch: {abort: AbortController} */
  let watch = null;

  // ---- HTTP ----

  /** An error carrying a problem document ({type,title,status,detail,field?,reason?,causes?}). */
  class ProblemError extends Error {
    constructor(problem) {
      super(problem.detail || problem.title || "error");
      this.problem = problem;
    }
  }

  async function problemOf(resp) {
    const text = await resp.text().catch(() => "");
    try {
      const p = JSON.parse(text);
      if (p && typeof p === "object" && (p.title || p.detail)) {
        return Object.assign({ status: resp.status }, p);
      }
    } catch (_) {
      // not JSON: fall through
    }
    return { title: resp.statusText || "Error", status: resp.status, detail: text || "no details" };
  }

  /** Call the API; resolves to the parsed JSON body, rejects with a ProblemError. A 401 signs out. */
  async function api(method, path, body) {
    const init = { method, headers: { Authorization: "Bearer " + token, Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ProblemError({ title: "Cannot reach the API", status: 0, detail: String(e.message || e) });
    }
    if (!resp.ok) {
      const problem = await problemOf(resp);
      if (resp.status === 401 && path !== "/v1/whoami") {
        signOut("Signed out: " + problem.detail);
      }
      throw new ProblemError(problem);
    }
    const text = await resp.text();
    return text ? JSON.parse(text) : null;
  }

  const nsPath = (rest) => "/v1/namespaces/" + encodeURIComponent(namespace) + rest;

  // ---- problems on the page ----

  /** Show a problem in `box`: title, detail, the field at fault and every cause. */
  function showProblem(box, problem) {
    box.replaceChildren();
    const head = document.createElement("p");
    head.className = "problem-title";
    head.textContent = (problem.title || "Error") + (problem.status ? " (" + problem.status + ")" : "");
    const detail = document.createElement("p");
    detail.className = "problem-detail";
    detail.dataset.testid = "problem-detail";
    detail.textContent = problem.detail || "";
    box.append(head, detail);
    if (problem.field) {
      const f = document.createElement("p");
      f.className = "problem-field";
      f.append("Field: ");
      const code = document.createElement("code");
      code.dataset.testid = "problem-field";
      code.textContent = problem.field;
      f.append(code);
      box.append(f);
    }
    const causes = (problem.causes || []).filter((c) => c.field !== problem.field || c.message !== problem.detail);
    if (causes.length > 1) {
      const ul = document.createElement("ul");
      for (const c of causes) {
        const li = document.createElement("li");
        if (c.field) {
          const code = document.createElement("code");
          code.textContent = c.field;
          li.append(code, ": ");
        }
        li.append(c.message || c.reason || "");
        ul.append(li);
      }
      box.append(ul);
    }
    box.hidden = false;
  }

  function hideProblem(box) {
    box.hidden = true;
    box.replaceChildren();
  }

  function say(text) {
    el.notice.textContent = text;
  }

  // ---- sign in and out ----

  async function signIn(candidate) {
    token = candidate;
    let me;
    try {
      me = await api("GET", "/v1/whoami");
    } catch (e) {
      token = "";
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn();
      showProblem(el.signinError, e.problem || { title: "Error", detail: String(e) });
      el.token.setAttribute("aria-invalid", "true");
      el.token.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    hideProblem(el.signinError);
    el.token.removeAttribute("aria-invalid");
    el.token.value = "";
    const id = me.identity || {};
    el.whoami.textContent = id.username || "(unknown)";
    el.whoami.title = (id.groups || []).length ? "groups: " + id.groups.join(", ") : "";
    el.signin.hidden = true;
    el.who.hidden = false;
    el.app.hidden = false;
    el.namespace.value = namespace;
    startWatch();
  }

  function showSignIn() {
    el.app.hidden = true;
    el.who.hidden = true;
    el.signin.hidden = false;
  }

  function signOut(why) {
    stopWatch();
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    clearRows();
    say("");
    hideProblem(el.actionError);
    hideProblem(el.launchError);
    showSignIn();
    if (why) {
      showProblem(el.signinError, { title: "Signed out", detail: why });
    } else {
      hideProblem(el.signinError);
    }
    el.token.focus();
  }

  // ---- the Systems table ----

  function clearRows() {
    rows.clear();
    el.body.replaceChildren();
    el.empty.hidden = false;
  }

  function button(label, testid, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary small";
    b.textContent = label;
    b.dataset.testid = testid;
    b.addEventListener("click", onClick);
    return b;
  }

  function cell(label, testid) {
    const td = document.createElement("td");
    td.dataset.label = label;
    td.dataset.testid = testid;
    return td;
  }

  function makeRow(name) {
    const tr = document.createElement("tr");
    tr.dataset.testid = "system-row";
    tr.dataset.name = name;
    const nameCell = document.createElement("th");
    nameCell.scope = "row";
    nameCell.dataset.label = "Name";
    nameCell.dataset.testid = "system-name";
    nameCell.textContent = name;
    const actions = cell("Actions", "system-actions");
    actions.className = "row-actions";
    const restart = button("Restart", "restart", () => restartSystem(name));
    restart.setAttribute("aria-label", "Restart " + name);
    const stop = button("Stop", "stop", () => stopSystem(name));
    stop.classList.add("danger");
    stop.setAttribute("aria-label", "Stop " + name);
    actions.append(restart, stop);
    tr.append(
      nameCell,
      cell("Phase", "system-phase"),
      cell("Ready", "system-ready"),
      cell("Owner", "system-owner"),
      cell("Endpoints", "system-endpoints"),
      actions,
    );
    return tr;
  }

  /** Whether a URL is safe to link to (no javascript: and the like). */
  function linkable(url) {
    try {
      const u = new URL(url);
      return u.protocol === "http:" || u.protocol === "https:";
    } catch (_) {
      return false;
    }
  }

  function fillRow(tr, view) {
    const status = view.status || {};
    const phase = view.deleting ? "Stopping" : status.phase || "Pending";
    tr.dataset.phase = phase;
    tr.dataset.ready = String(!!view.ready && !view.deleting);
    tr.dataset.deleting = String(!!view.deleting);
    const [, phaseCell, readyCell, ownerCell, endpointsCell, actions] = tr.children;

    const badge = document.createElement("span");
    badge.className = "badge phase-" + phase.toLowerCase();
    badge.textContent = phase;
    const ready = (status.conditions || []).find((c) => c.type === "Ready");
    if (ready && ready.message) badge.title = ready.message;
    phaseCell.replaceChildren(badge);

    readyCell.textContent = (view.ready ? "✓ " : "") + (status.ready || (view.ready ? "yes" : "no"));
    readyCell.classList.toggle("is-ready", !!view.ready);
    ownerCell.textContent = view.owner || "—";

    const endpoints = status.endpoints || [];
    if (endpoints.length === 0) {
      endpointsCell.textContent = "—";
    } else {
      const ul = document.createElement("ul");
      ul.className = "endpoints";
      for (const ep of endpoints) {
        const li = document.createElement("li");
        const what = ep.port + (ep.protocol && ep.protocol !== "TCP" ? "/" + ep.protocol : "");
        if (ep.url && linkable(ep.url)) {
          const a = document.createElement("a");
          a.href = ep.url;
          a.target = "_blank";
          a.rel = "noopener noreferrer";
          a.dataset.testid = "endpoint-link";
          a.textContent = new URL(ep.url).host;
          a.title = ep.url;
          a.setAttribute("aria-label", "port " + what + " of " + view.name + " at " + ep.url + " (opens a new tab)");
          li.append(what + " → ", a);
        } else {
          li.append(what + (ep.url ? " → " + ep.url : " (no address yet)"));
        }
        ul.append(li);
      }
      endpointsCell.replaceChildren(ul);
    }
    for (const b of actions.querySelectorAll("button")) b.disabled = !!view.deleting;
  }

  function upsert(view) {
    let entry = rows.get(view.name);
    if (!entry) {
      entry = { row: makeRow(view.name) };
      rows.set(view.name, entry);
      // Keep the rows sorted by name.
      const after = [...rows.keys()].sort().find((n) => n > view.name);
      el.body.insertBefore(entry.row, after ? rows.get(after).row : null);
    }
    entry.view = view;
    fillRow(entry.row, view);
    el.empty.hidden = rows.size > 0;
  }

  function remove(name) {
    const entry = rows.get(name);
    if (!entry) return;
    // Keep the keyboard focus on the page when the focused button goes away.
    const hadFocus = entry.row.contains(document.activeElement);
    entry.row.remove();
    rows.delete(name);
    el.empty.hidden = rows.size > 0;
    if (hadFocus) el.image.focus();
  }

  // ---- the live stream ----

  function setStream(state, text) {
    el.stream.dataset.state = state;
    el.stream.textContent = text;
  }

  function stopWatch() {
    if (watch) {
      watch.abort.abort();
      clearTimeout(watch.timer);
      watch = null;
    }
  }

  /** Follow the Systems of the namespace; reconnect with backoff whenever the stream ends. */
  function startWatch() {
    stopWatch();
    clearRows();
    hideProblem(el.actionError);
    const me = { abort: new AbortController(), timer: 0, delay: 1000 };
    watch = me;
    connect(me);
  }

  function retry(me, why) {
    if (watch !== me) return;
    const secs = Math.round(me.delay / 1000);
    setStream("reconnecting", why + " Reconnecting in " + secs + " s…");
    me.timer = setTimeout(() => connect(me), me.delay);
    me.delay = Math.min(me.delay * 2, 30000);
  }

  async function connect(me) {
    if (watch !== me) return;
    setStream("connecting", "Connecting to " + namespace + "…");
    let resp;
    try {
      resp = await fetch(nsPath("/watch/systems"), {
        headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" },
        signal: me.abort.signal,
        cache: "no-store",
      });
    } catch (e) {
      if (watch === me) retry(me, "Cannot reach the API.");
      return;
    }
    if (watch !== me) return;
    if (!resp.ok) {
      const problem = await problemOf(resp);
      if (resp.status === 401) {
        signOut("Signed out: " + problem.detail);
        return;
      }
      if (resp.status >= 500 || resp.status === 429 || resp.status === 408) {
        retry(me, problem.detail + ".");
        return;
      }
      // 400 (a bad namespace), 403, 404: retrying will not help.
      setStream("failed", "Not following " + namespace + ".");
      showProblem(el.actionError, problem);
      if (problem.field === "namespace") el.namespace.setAttribute("aria-invalid", "true");
      return;
    }
    el.namespace.removeAttribute("aria-invalid");
    // Names seen since (re)connecting: on `synced` the rows of any others are gone.
    let seen = new Set();
    const onEvent = (type, data) => {
      if (type === "system") {
        const view = JSON.parse(data);
        if (seen) seen.add(view.name);
        upsert(view);
      } else if (type === "deleted") {
        remove(JSON.parse(data).name);
      } else if (type === "synced") {
        if (seen) {
          for (const name of [...rows.keys()]) if (!seen.has(name)) remove(name);
        }
        seen = null;
        me.delay = 1000;
        setStream("live", "Live: following Systems in " + namespace + ".");
      } else if (type === "problem") {
        const p = JSON.parse(data);
        setStream("trouble", "Trouble following Systems: " + (p.detail || p.title));
      } else if (type === "resync") {
        seen = new Set();
      }
    };
    try {
      await readEvents(resp.body, onEvent);
      retry(me, "The stream ended.");
    } catch (e) {
      if (watch === me && e.name !== "AbortError") retry(me, "The stream broke.");
    }
  }

  /** Parse a text/event-stream body and call onEvent(type, data) per event; a `: resync` comment too. */
  async function readEvents(body, onEvent) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let type = "";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        // A lone \r at the end of the buffer may be the start of \r\n.
        if (buf[nl] === "\r" && nl === buf.length - 1) break;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith("\r\n", nl) ? 2 : 1));
        if (line === "") {
          if (data.length) onEvent(type || "message", data.join("\n"));
          type = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) {
          if (line.slice(1).trim() === "resync") onEvent("resync", "");
          continue;
        }
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") type = val;
        else if (field === "data") data.push(val);
      }
    }
  }

  // ---- actions ----

  async function stopSystem(name) {
    hideProblem(el.actionError);
    try {
      await api("DELETE", nsPath("/systems/" + encodeURIComponent(name)));
      const entry = rows.get(name);
      if (entry) fillRow(entry.row, Object.assign({}, entry.view, { deleting: true }));
      say("Stopping " + name + "…");
    } catch (e) {
      if (e.problem && e.problem.status === 404) {
        remove(name);
        say(name + " was already gone.");
        return;
      }
      showProblem(el.actionError, e.problem || { title: "Error", detail: String(e) });
    }
  }

  async function restartSystem(name) {
    hideProblem(el.actionError);
    try {
      await api("POST", nsPath("/systems/" + encodeURIComponent(name) + "/restart"));
      say("Restarting " + name + "…");
    } catch (e) {
      showProblem(el.actionError, e.problem || { title: "Error", detail: String(e) });
    }
  }

  function clearInvalid() {
    for (const input of el.launchForm.querySelectorAll("[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-errormessage");
    }
  }

  /** The form input a problem's field (`name`, `ports[0]`, `spec.containers[0].env[1].name` …) names. */
  function inputFor(field) {
    if (!field) return null;
    const m = field.match(/^(?:spec\.containers\[\d+\]\.)?([A-Za-z]+)/);
    if (!m) return null;
    const key = m[1] === "metadata" ? "name" : m[1];
    return el.launchForm.querySelector('[data-field="' + key + '"]');
  }

  /** The request body of the launch form, or a problem for what the form itself can tell is wrong. */
  function launchBody() {
    const body = { image: el.image.value.trim() };
    const name = el.name.value.trim();
    if (name) body.name = name;
    const ports = el.ports.value.split(/[\s,]+/).filter(Boolean);
    body.ports = [];
    for (const p of ports) {
      if (!/^\d+$/.test(p)) {
        return { problem: { title: "Invalid input", detail: "port \"" + p + "\" is not a number", field: "ports" } };
      }
      body.ports.push(Number(p));
    }
    const env = {};
    const lines = el.env.value.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (!line) continue;
      const eq = line.indexOf("=");
      if (eq <= 0) {
        return {
          problem: { title: "Invalid input", detail: "line " + (i + 1) + " is not KEY=value", field: "env" },
        };
      }
      env[line.slice(0, eq)] = line.slice(eq + 1);
    }
    if (Object.keys(env).length) body.env = env;
    if (el.session.checked) {
      const secs = Number(el.duration.value);
      if (!Number.isInteger(secs)) {
        return {
          problem: {
            title: "Invalid input",
            detail: "the session length is not a whole number of seconds",
            field: "newSession.durationSeconds",
          },
        };
      }
      body.newSession = { durationSeconds: secs, hold: "api" };
    }
    return { body };
  }

  function launchFailed(problem) {
    showProblem(el.launchError, problem);
    const input = inputFor(problem.field);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-errormessage", "launch-error");
      input.focus();
    }
  }

  async function launch(ev) {
    ev.preventDefault();
    hideProblem(el.launchError);
    clearInvalid();
    const { body, problem } = launchBody();
    if (problem) {
      launchFailed(problem);
      return;
    }
    el.launchSubmit.disabled = true;
    el.launchSubmit.textContent = "Launching…";
    try {
      const created = await api("POST", nsPath("/systems"), body);
      const view = created.system;
      // The stream brings it too; add it now unless the stream was first.
      if (!rows.has(view.name)) upsert(view);
      say(
        "Launched " + view.name + (created.session ? " (session " + created.session.name + ")" : "") + ".",
      );
      el.name.value = "";
    } catch (e) {
      launchFailed(e.problem || { title: "Error", detail: String(e) });
    } finally {
      el.launchSubmit.disabled = false;
      el.launchSubmit.textContent = "Launch";
    }
  }

  function fillExample(name) {
    const ex = EXAMPLES[name];
    if (!ex) return;
    el.image.value = ex.image;
    el.ports.value = ex.ports;
    el.env.value = ex.env;
    el.name.value = "";
    hideProblem(el.launchError);
    clearInvalid();
    el.image.focus();
  }

  // ---- wiring ----

  el.signinForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = el.token.value.trim();
    if (!t) {
      showProblem(el.signinError, { title: "No token", detail: "enter a bearer token", field: "token" });
      el.token.setAttribute("aria-invalid", "true");
      el.token.focus();
      return;
    }
    signIn(t);
  });
  el.signout.addEventListener("click", () => signOut());
  el.nsForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    namespace = el.namespace.value.trim() || "default";
    el.namespace.value = namespace;
    sessionStorage.setItem(NS_KEY, namespace);
    say("");
    startWatch();
  });
  el.launchForm.addEventListener("submit", launch);
  for (const b of document.querySelectorAll("[data-example]")) {
    b.addEventListener("click", () => fillExample(b.dataset.example));
  }
  el.session.addEventListener("change", () => {
    el.duration.disabled = !el.session.checked;
  });

  if (token) {
    signIn(token);
  } else {
    showSignIn();
  }
})();
