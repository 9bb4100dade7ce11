// The mirror's page: plain DOM and canvas, no library, no network beyond this server.
"use strict";
const main = document.getElementById("main");
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v); else if (v !== null && v !== undefined) el.setAttribute(k, v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid instanceof Node ? kid : String(kid));
  return el;
}
const enc = encodeURIComponent;
const fmtTime = ms => ms == null ? "" : new Date(ms).toISOString().replace("T", " ").slice(0, 19);
const fmtDur = ms => ms == null ? "" : ms < 1000 ? ms + " ms" : ms < 60000 ? (ms / 1000).toFixed(1) + " s" : (ms / 60000).toFixed(1) + " min";
const fmtNum = v => v == null ? "" : (typeof v === "number" ? (Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : +v.toPrecision(6)) : v);

async function get(path) {
  const r = await fetch(path, {credentials: "same-origin"});
  if (r.status === 401) { await askKey(); return get(path); }
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).msg || r.statusText);
  return r.json();
}

function askKey() {
  const dialog = document.getElementById("keydialog");
  return new Promise(resolve => {
    const form = document.getElementById("keyform");
    form.onsubmit = async ev => {
      ev.preventDefault();
      const r = await fetch("/ui/login", {method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify({apiKey: document.getElementById("keyinput").value})});
      if (r.ok) { dialog.close(); resolve(); } else document.getElementById("keyerror").textContent = "That key is not this mirror's.";
    };
    if (!dialog.open) dialog.showModal();
  });
}

function crumbs(...parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(...parts.map(([label, href]) => href ? h("a", {href}, label, " / ") : h("span", {}, label)));
}

// ----- pages ------------------------------------------------------------------------------
async function showTree() {
  crumbs();
  const data = await get("/ui/api/tree");
  main.replaceChildren(h("h1", {}, "Workspaces"), ...data.workspaces.map(w => h("section", {},
    h("h2", {}, w.workspace),
    h("ul", {}, w.projects.map(p => h("li", {}, h("a", {href: `#/p/${enc(w.workspace)}/${enc(p.project)}`}, p.project),
      ` — ${p.experiments} experiments`, p.description ? ` — ${p.description}` : ""))))));
}

async function showProject(ws, proj) {
  crumbs([ws, "#/"], [proj, null]);
  const data = await get(`/ui/api/experiments?workspace=${enc(ws)}&project=${enc(proj)}`);
  const rows = data.experiments;
  const paramNames = [...new Set(rows.flatMap(r => Object.keys(r.params)))].sort();
  const metricNames = [...new Set(rows.flatMap(r => Object.keys(r.metrics)))].sort();
  let chosenParams = paramNames.slice(0, 4), chosenMetrics = metricNames.slice(0, 3);
  let sortKey = "start", sortDir = 1, filter = "";
  const selected = new Set();
  const table = h("table", {id: "experiments"});
  const cell = (r, col) => {
    if (col.startsWith("param:")) return r.params[col.slice(6)];
    if (col.startsWith("last:")) return (r.metrics[col.slice(5)] || {}).last;
    if (col.startsWith("min:")) return (r.metrics[col.slice(4)] || {}).min;
    if (col.startsWith("max:")) return (r.metrics[col.slice(4)] || {}).max;
    if (col === "tags") return r.tags.join(", ");
    return r[col];
  };
  function render() {
    const cols = ["name", "state", "start", "duration", "tags", ...chosenParams.map(p => "param:" + p),
      ...chosenMetrics.flatMap(m => ["last:" + m, "min:" + m, "max:" + m])];
    const f = filter.toLowerCase();
    const shown = rows.filter(r => !f || JSON.stringify([r.name, r.key, r.state, r.tags, r.params]).toLowerCase().includes(f));
    shown.sort((a, b) => {
      const x = cell(a, sortKey), y = cell(b, sortKey);
      if (x == null) return 1; if (y == null) return -1;
      const nx = Number(x), ny = Number(y);
      return (isNaN(nx) || isNaN(ny) ? String(x).localeCompare(String(y)) : nx - ny) * sortDir;
    });
    const head = h("tr", {}, h("th", {scope: "col"}, "compare"), cols.map(c => h("th", {scope: "col", "aria-sort": c === sortKey ? (sortDir > 0 ? "ascending" : "descending") : "none"},
      h("button", {onclick: () => { sortDir = sortKey === c ? -sortDir : 1; sortKey = c; render(); }}, c))));
    const body = shown.map(r => h("tr", {"data-key": r.key},
      h("td", {}, h("input", {type: "checkbox", "aria-label": "compare " + (r.name || r.key), ...(selected.has(r.key) ? {checked: ""} : {}),
        onchange: ev => { ev.target.checked ? selected.add(r.key) : selected.delete(r.key); }})),
      cols.map(c => h("td", {}, c === "name" ? h("a", {href: `#/e/${enc(r.key)}`}, r.name || r.key)
        : c === "start" ? fmtTime(r.start) : c === "duration" ? fmtDur(r.duration) : fmtNum(cell(r, c))))));
    table.replaceChildren(h("thead", {}, head), h("tbody", {}, body));
  }
  const pick = (names, chosen, label, set) => h("label", {}, label + " ",
    h("select", {multiple: "", size: Math.min(4, Math.max(2, names.length)), onchange: ev => { set([...ev.target.selectedOptions].map(o => o.value)); render(); }},
      names.map(n => h("option", {value: n, ...(chosen.includes(n) ? {selected: ""} : {})}, n))));
  main.replaceChildren(h("h1", {}, `${ws} / ${proj}`),
    h("div", {class: "controls"},
      h("label", {}, "Filter ", h("input", {type: "search", id: "filter", oninput: ev => { filter = ev.target.value; render(); }})),
      pick(paramNames, chosenParams, "Params", v => chosenParams = v),
      pick(metricNames, chosenMetrics, "Metrics", v => chosenMetrics = v),
      h("button", {id: "compare", onclick: () => { const keys = selected.size ? [...selected] : rows.map(r => r.key); location.hash = "#/c/" + keys.map(enc).join(","); }}, "Compare selected (all if none)")),
    h("div", {class: "tablewrap"}, table));
  render();
}

async function showExperiment(key) {
  const e = await get(`/ui/api/experiment?key=${enc(key)}`);
  crumbs([e.workspace, "#/"], [e.project, `#/p/${enc(e.workspace)}/${enc(e.project)}`], [e.name || e.key, null]);
  const kv = obj => h("table", {class: "kv"}, h("tbody", {}, Object.entries(obj).map(([k, v]) =>
    h("tr", {}, h("td", {}, k), h("td", {}, typeof v === "object" ? JSON.stringify(v) : String(v))))));
  const assetUrl = a => `/ui/asset?key=${enc(e.key)}&id=${enc(a.id)}`;
  const charts = h("div", {class: "grid"});
  main.replaceChildren(
    h("h1", {}, e.name || e.key),
    kv({key: e.key, source: e.source, state: e.state, start: fmtTime(e.start), end: fmtTime(e.end), tags: e.tags.join(", ")}),
    h("h2", {}, "Metrics"), charts,
    h("h2", {}, "Parameters"), kv(e.params),
    h("h2", {}, "Others"), kv(e.others),
    h("h2", {}, "System"), kv(e.system),
    h("h2", {}, "Assets"), h("table", {id: "assets"}, h("tbody", {}, e.assets.map(a => h("tr", {},
      h("td", {}, a.remote ? h("span", {}, a.name, " (remote: ", a.link, ")") : h("a", {href: assetUrl(a) + "&download=1", download: a.name}, a.name)),
      h("td", {}, a.type), h("td", {}, a.size == null ? "" : a.size + " B"), h("td", {}, a.step == null ? "" : "step " + a.step),
      h("td", {}, a.type === "image" && !a.remote ? h("img", {class: "asset", src: assetUrl(a), alt: a.name, loading: "lazy"}) : ""))))),
    e.html ? h("section", {}, h("h2", {}, "HTML"), h("iframe", {sandbox: "", srcdoc: e.html, title: "logged HTML"})) : "",
    h("h2", {}, "Output"), h("pre", {}, e.output || "(none)"));
  for (const m of e.metrics.slice(0, 24)) charts.append(chartBox([e.key], m, false));
}

async function showCompare(keys) {
  crumbs(["compare", null]);
  const names = (await get(`/ui/api/metrics?keys=${keys.map(enc).join(",")}`)).metrics;
  const holder = h("div", {});
  const select = h("select", {id: "metric", onchange: () => holder.replaceChildren(chartBox(keys, select.value, true))},
    names.map(n => h("option", {value: n}, n)));
  main.replaceChildren(h("h1", {}, `Compare ${keys.length} runs`), h("label", {}, "Metric ", select), holder);
  if (names.length) holder.replaceChildren(chartBox(keys, names[0], true));
}

// ----- a chart: every point reachable by zooming; drawn from at most 2 points per pixel ----
function chartBox(keys, metric, big) {
  const canvas = h("canvas", {role: "img", "aria-label": `chart of ${metric}`});
  const legend = h("div", {class: "legend"});
  const status = h("span", {"aria-live": "polite"});
  let x = "step", smooth = 0, range = null, data = null;
  const box = h("figure", {class: "chartfig"},
    h("figcaption", {}, h("strong", {}, metric), " ",
      h("label", {}, "x ", h("select", {onchange: ev => { x = ev.target.value; range = null; load(); }}, h("option", {value: "step"}, "step"), h("option", {value: "time"}, "time"))),
      " ", h("label", {}, "smoothing ", h("input", {type: "range", min: 0, max: 0.99, step: 0.01, value: 0, oninput: ev => { smooth = +ev.target.value; draw(); }})),
      " ", h("button", {onclick: () => { range = null; load(); }}, "reset zoom"), " ", status),
    h("div", {class: "chart", style: big ? "height:480px" : null}, canvas), legend);
  async function load() {
    const w = Math.max(200, canvas.clientWidth || 600);
    let q = `/ui/api/series?keys=${keys.map(enc).join(",")}&metric=${enc(metric)}&x=${x}&buckets=${w}`;
    if (range) q += `&lo=${range[0]}&hi=${range[1]}`;
    data = await get(q);
    const total = data.series.reduce((s, d) => s + d.points, 0);
    status.textContent = `${total} points` + (range ? " in range" : "");
    legend.replaceChildren(...data.series.map((s, i) => h("span", {}, h("i", {style: `background:${COLORS[i % COLORS.length]}`}), s.name || s.key)));
    draw();
  }
  const pad = {l: 60, r: 10, t: 10, b: 30};
  let scale = null;
  function draw() {
    if (!data) return;
    const dpr = window.devicePixelRatio || 1, W = canvas.clientWidth, H = canvas.clientHeight;
    canvas.width = W * dpr; canvas.height = H * dpr;
    const g = canvas.getContext("2d"); g.scale(dpr, dpr); g.clearRect(0, 0, W, H);
    const series = data.series.filter(s => s.x.length);
    canvas.dataset.series = String(series.length);
    if (!series.length) { g.fillText("no points", W / 2 - 20, H / 2); return; }
    const ys = series.map(s => smoothed(s.y));
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    series.forEach((s, i) => { for (let j = 0; j < s.x.length; j++) { x0 = Math.min(x0, s.x[j]); x1 = Math.max(x1, s.x[j]); y0 = Math.min(y0, ys[i][j]); y1 = Math.max(y1, ys[i][j]); } });
    if (range) { x0 = range[0]; x1 = range[1]; }
    if (x1 === x0) x1 = x0 + 1; if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
    const sx = v => pad.l + (v - x0) / (x1 - x0) * (W - pad.l - pad.r);
    const sy = v => H - pad.b - (v - y0) / (y1 - y0) * (H - pad.t - pad.b);
    scale = {x0, x1, W};
    g.strokeStyle = "#999"; g.fillStyle = "#444"; g.font = "11px system-ui";
    g.strokeRect(pad.l, pad.t, W - pad.l - pad.r, H - pad.t - pad.b);
    for (const yv of niceTicks(y0, y1, 5, 0)) g.fillText(fmtNum(yv), 2, sy(yv) + 4);
    for (const xv of niceTicks(x0, x1, 5, x === "time" ? 0 : 1))
      g.fillText(x === "time" ? fmtTime(xv).slice(11) : fmtNum(xv), sx(xv) - 15, H - 10);
    series.forEach((s, i) => {
      g.strokeStyle = COLORS[i % COLORS.length]; g.lineWidth = 1.2; g.beginPath();
      for (let j = 0; j < s.x.length; j++) { const px = sx(s.x[j]), py = sy(ys[i][j]); j ? g.lineTo(px, py) : g.moveTo(px, py); }
      g.stroke();
      if (s.x.length < 50) {     // few points: mark each, a single one draws no line
        g.fillStyle = COLORS[i % COLORS.length];
        for (let j = 0; j < s.x.length; j++) { g.beginPath(); g.arc(sx(s.x[j]), sy(ys[i][j]), 3, 0, 7); g.fill(); }
      }
    });
  }
  // about n ticks at round values (1, 2 or 5 times a power of ten), no finer than minStep
  function niceTicks(lo, hi, n, minStep) {
    const raw = (hi - lo) / n, pow = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = Math.max(minStep, [1, 2, 5, 10].map(m => m * pow).find(s => s >= raw));
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }
  function smoothed(y) {
    if (!smooth) return y;
    const out = new Array(y.length); let acc = y[0];
    for (let j = 0; j < y.length; j++) { acc = smooth * acc + (1 - smooth) * y[j]; out[j] = acc; }
    return out;
  }
  // drag to zoom into an x range; the server answers that range at full resolution
  let dragFrom = null;
  const toX = ev => { const r = canvas.getBoundingClientRect(); return scale.x0 + (ev.clientX - r.left - pad.l) / (scale.W - pad.l - pad.r) * (scale.x1 - scale.x0); };
  canvas.addEventListener("mousedown", ev => { if (scale) dragFrom = toX(ev); });
  canvas.addEventListener("mouseup", ev => {
    if (dragFrom === null) return; const to = toX(ev);
    if (Math.abs(to - dragFrom) > (scale.x1 - scale.x0) / 200) { range = [Math.min(dragFrom, to), Math.max(dragFrom, to)]; load(); }
    dragFrom = null;
  });
  canvas.addEventListener("dblclick", () => { range = null; load(); });
  requestAnimationFrame(() => load().catch(err => { status.textContent = err.message; }));
  return box;
}

// ----- routing --------------------------------------------------------------------------
async function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "p" && parts.length >= 3) await showProject(parts[1], parts[2]);
    else if (parts[0] === "e" && parts[1]) await showExperiment(parts.slice(1).join("/"));
    else if (parts[0] === "c" && parts[1]) await showCompare(location.hash.slice(4).split(",").map(decodeURIComponent));
    else await showTree();
    document.body.dataset.ready = location.hash || "#/";
  } catch (err) {
    main.replaceChildren(h("p", {role: "alert"}, "Could not load: " + err.message));
  }
}
window.addEventListener("hashchange", route);
route();
