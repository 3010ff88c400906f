// gate dashboard: charts (uPlot, vendored) from the JSON API, and live updates over server-sent
// events. Every value from a run goes into the page as text (textContent), never as markup.
(function () {
  "use strict";

  // ---- theme toggle (the page follows the system without JavaScript)
  var toggle = document.getElementById("theme-toggle");
  if (toggle) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      var root = document.documentElement;
      var dark = root.getAttribute("data-theme") === "dark" ||
        (!root.getAttribute("data-theme") && window.matchMedia("(prefers-color-scheme: dark)").matches);
      var next = dark ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("gate-theme", next); } catch (e) { /* ignore */ }
      redrawAll();
    });
  }

  var runEl = document.getElementById("run");
  if (!runEl) return;
  var runId = runEl.getAttribute("data-run-id");
  var charts = {};      // "objective|source" -> {plot, el}
  var lastView = null;

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function text(el, value) { if (el) el.textContent = value == null ? "" : String(value); }
  function el(tag, cls, value) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (value != null) e.textContent = String(value);
    return e;
  }
  function num(x) {
    if (typeof x !== "number" || !isFinite(x)) return "—";
    if (Math.abs(x) >= 100) return x.toFixed(0);
    if (Math.abs(x) >= 1) return x.toFixed(2);
    return x.toPrecision(4);
  }
  function since(t) { return typeof t === "number" ? "+" + Math.round(t - lastView.run.created_at) + "s" : "—"; }

  function chaosPlugin(windows) {
    return {
      hooks: {
        drawClear: [function (u) {
          var ctx = u.ctx;
          ctx.save();
          ctx.fillStyle = css("--chaos");
          (windows() || []).forEach(function (w) {
            var end = w.end == null ? u.scales.x.max : w.end;
            var x0 = u.valToPos(w.start, "x", true), x1 = u.valToPos(end, "x", true);
            ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
          });
          ctx.restore();
        }]
      }
    };
  }

  function seriesData(o) {
    var bound = o.bound_max != null ? o.bound_max : o.bound_min;
    var tol = o.tolerance;
    return [
      o.x,
      o.stable,
      o.canary,
      o.x.map(function () { return bound == null ? null : bound; }),
      o.stable.map(function (v) { return (tol == null || v == null) ? null : v * (1 + tol); })
    ];
  }

  function draw(panel, o) {
    var box = panel.querySelector(".chart");
    if (!box || !window.uPlot) return;
    var key = o.objective + "|" + o.source;
    var width = Math.max(240, box.clientWidth || panel.clientWidth - 16);
    var opts = {
      width: width, height: 170,
      scales: { x: { time: true } },
      axes: [{ stroke: css("--muted"), grid: { stroke: css("--line") } },
             { stroke: css("--muted"), grid: { stroke: css("--line") }, size: 50 }],
      series: [
        {},
        { label: "stable", stroke: css("--stable"), width: 2, spanGaps: true },
        { label: "canary", stroke: css("--canary"), width: 2, spanGaps: true },
        { label: o.bound_max != null ? "bound" : "bound (min)", stroke: css("--bound"), dash: [6, 4], width: 1, show: o.bound_max != null || o.bound_min != null },
        { label: "stable + tolerance", stroke: css("--muted"), dash: [3, 3], width: 1, show: o.tolerance != null }
      ],
      plugins: [chaosPlugin(function () { return lastView ? lastView.chaos : []; })]
    };
    if (charts[key]) { charts[key].plot.destroy(); }
    box.textContent = "";
    box.classList.add("drawn");
    var plot = new uPlot(opts, seriesData(o), box);
    charts[key] = { plot: plot, panel: panel };
    panel.setAttribute("data-points", String(o.x.length));
  }

  function panelFor(o) {
    var panels = document.querySelectorAll("figure.panel");
    for (var i = 0; i < panels.length; i++) {
      if (panels[i].getAttribute("data-objective") === o.objective && panels[i].getAttribute("data-source") === o.source) return panels[i];
    }
    return null;
  }

  function addObjective(o) {
    // An objective judged for the first time since the page loaded: a new row with three panels.
    var container = document.getElementById("objectives");
    var row = el("div", "objective");
    var h = el("h3", null, o.objective + " ");
    h.appendChild(el("span", "muted small", o.sli));
    row.appendChild(h);
    var grid = el("div", "sources");
    ["synthetic", "shadow", "production"].forEach(function (src) {
      var fig = el("figure", "panel");
      fig.setAttribute("data-objective", o.objective);
      fig.setAttribute("data-source", src);
      fig.appendChild(el("figcaption", null, src));
      var c = el("div", "chart");
      c.setAttribute("role", "img");
      c.setAttribute("aria-label", o.objective + " on " + src + ": stable and canary over time");
      fig.appendChild(c);
      fig.appendChild(el("ul", "words small"));
      grid.appendChild(fig);
    });
    row.appendChild(grid);
    var empty = container.querySelector("p.muted");
    if (empty) empty.remove();
    container.appendChild(row);
  }

  function updatePanel(panel, o) {
    var cap = panel.querySelector("figcaption");
    if (cap && o.latest) {
      cap.textContent = o.source + " ";
      cap.appendChild(el("span", "badge v-" + String(o.latest.status).toLowerCase(), o.latest.status));
    }
    var words = panel.querySelector("ul.words");
    if (words && o.latest) {
      words.textContent = "";
      o.latest.words.forEach(function (w) { words.appendChild(el("li", null, w)); });
    }
    var rows = panel.querySelectorAll("table.latest td");
    if (rows.length >= 2) {
      var lastOf = function (xs) { for (var i = xs.length - 1; i >= 0; i--) if (xs[i] != null) return xs[i]; return null; };
      text(rows[0], num(lastOf(o.stable)) + " " + o.unit);
      text(rows[1], num(lastOf(o.canary)) + " " + o.unit);
    }
    var key = o.objective + "|" + o.source;
    if (charts[key]) { charts[key].plot.setData(seriesData(o)); panel.setAttribute("data-points", String(o.x.length)); }
    else draw(panel, o);
  }

  function renderSteps(steps) {
    var list = document.getElementById("steps");
    if (!list) return;
    list.textContent = "";
    steps.forEach(function (s) {
      var li = el("li", "step st-" + String(s.state).replace(/ /g, "-"));
      var m = el("meter", "w");
      m.min = 0; m.max = 100; m.value = s.weight;
      m.setAttribute("aria-label", "canary weight " + s.weight + "%");
      li.appendChild(m);
      li.appendChild(el("strong", null, (s.index + 1) + ". " + s.label));
      var info = "weight " + s.weight + "% · " + s.state;
      if (s.started_at) info += " · from " + since(s.started_at);
      if (s.ended_at) info += " to " + since(s.ended_at);
      li.appendChild(el("span", "muted", info));
      if (s.looks) {
        var d = el("span", "small", s.looks + " looks:");
        Object.keys(s.decisions).forEach(function (a) { d.appendChild(document.createTextNode(" ")); d.appendChild(el("span", "badge a-" + a, a + " " + s.decisions[a])); });
        li.appendChild(d);
      }
      if (s.last_reason) li.appendChild(el("div", "small muted", s.last_reason));
      list.appendChild(li);
    });
  }

  function renderLooks(looks) {
    var body = document.getElementById("looks-body");
    if (!body) return;
    body.textContent = "";
    looks.forEach(function (lk) {
      var tr = el("tr");
      tr.appendChild(el("td", null, lk.look));
      tr.appendChild(el("td", null, lk.step + 1));
      tr.appendChild(el("td", null, since(lk.at)));
      var td = el("td"); td.appendChild(el("span", "badge a-" + lk.action, lk.action)); tr.appendChild(td);
      tr.appendChild(el("td", null, lk.reason));
      body.appendChild(tr);
    });
  }

  function renderAudit(audit) {
    var body = document.getElementById("audit-body");
    if (!body || !audit.length) return;
    body.textContent = "";
    audit.forEach(function (a) {
      var tr = el("tr");
      tr.appendChild(el("td", null, new Date(a.at * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC"));
      tr.appendChild(el("td", null, a.actor));
      tr.appendChild(el("td", null, a.action));
      tr.appendChild(el("td", null, a.reason));
      tr.appendChild(el("td", null, a.origin));
      body.appendChild(tr);
    });
  }

  function apply(view) {
    lastView = view;
    var r = view.run;
    var badge = document.getElementById("run-status");
    if (badge) { badge.className = "badge s-" + r.status; text(badge, r.status); }
    text(document.getElementById("run-phase"), r.phase);
    text(document.getElementById("run-step"), Math.min(r.step + 1, r.steps) + "/" + r.steps);
    text(document.getElementById("run-weight"), r.weight + "%");
    text(document.getElementById("run-decision"), r.last_decision);
    text(document.getElementById("run-looks"), view.looks_total);
    text(document.getElementById("run-reason"), r.reason);
    renderSteps(view.steps);
    renderLooks(view.looks);
    renderAudit(view.audit);
    view.objectives.forEach(function (o) {
      var panel = panelFor(o);
      if (!panel) { addObjective(o); panel = panelFor(o); }
      if (panel) updatePanel(panel, o);
    });
    runEl.setAttribute("data-looks", String(view.looks_total));
    runEl.setAttribute("data-status", r.status);
  }

  function redrawAll() {
    if (!lastView) return;
    lastView.objectives.forEach(function (o) { var p = panelFor(o); if (p) draw(p, o); });
  }

  var live = document.getElementById("live");
  fetch("/api/v1/runs/" + encodeURIComponent(runId), { credentials: "same-origin" })
    .then(function (resp) { return resp.ok ? resp.json() : Promise.reject(resp.status); })
    .then(function (view) {
      apply(view);
      if (!window.EventSource) return;
      var es = new EventSource("/api/v1/runs/" + encodeURIComponent(runId) + "/events");
      es.addEventListener("run", function (ev) {
        var data = JSON.parse(ev.data);
        apply(data);
        text(live, data.run.phase === "finished" ? "finished" : "live · updated " + new Date().toLocaleTimeString());
      });
      es.onerror = function () { text(live, "reconnecting…"); };
    })
    .catch(function (err) { text(live, "charts unavailable (" + err + ")"); });
  window.addEventListener("resize", function () { clearTimeout(window.__gateResize); window.__gateResize = setTimeout(redrawAll, 200); });
})();
