/* Tycho board: plain fetch + Plotly (plotly.js strict bundle, shipped in static/). No CDN. */
"use strict";
const Board = (() => {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const getJSON = async (url) => {
    const r = await fetch(url, {headers: {Accept: "application/json"}});
    if (!r.ok) throw new Error(`${url}: ${r.status}`);
    return r.json();
  };
  const swapFromPage = async (selectors) => {
    const r = await fetch(location.href);
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    for (const sel of selectors) {
      const fresh = $(sel, doc), old = $(sel);
      if (fresh && old) old.replaceWith(fresh);
    }
  };
  const PHASE_TEXT = {Cached: "cache hit", Succeeded: "ran"};
  const layoutFor = (title, logx, logy) => ({
    title: {text: title, font: {size: 13}}, margin: {l: 50, r: 12, t: 34, b: 36}, height: 320,
    xaxis: {title: {text: "step"}, type: logx ? "log" : "linear"}, yaxis: {type: logy ? "log" : "linear"},
    legend: {orientation: "h", y: -0.2, font: {size: 11}}, hovermode: "closest",
  });
  const plot = (el, traces, layout) => Plotly.react(el, traces, layout, {displaylogo: false, responsive: true});

  // ---- leaderboard ------------------------------------------------------------------------
  function leaderboard(live) {
    const button = $("#compare-button");
    // Compared oldest first: the first run is the baseline the others are diffed against.
    const picked = () => $$("input.pick:checked").map((c) => [c.closest("tr").dataset.created, c.value]).sort()
      .map((pair) => pair[1]);
    document.addEventListener("change", (e) => {
      if (e.target.classList && e.target.classList.contains("pick")) button.disabled = picked().length < 2;
    });
    button.addEventListener("click", () => { location.href = "/compare?runs=" + picked().map(encodeURIComponent).join(","); });
    $("#parallel-button").addEventListener("click", () => parallel($("#parallel"), false));
    if (live) {
      const timer = setInterval(async () => {
        const checked = new Set(picked());
        await swapFromPage(["#runs-body"]);
        $$("input.pick").forEach((c) => { c.checked = checked.has(c.value); });
        if (!$("#runs-body tr.phase-running")) clearInterval(timer);
      }, 3000);
    }
  }

  // ---- parallel coordinates (leaderboard: every matching run; compare: these runs + trials) --
  const parcoords = (box, keys, rows, title) => {
    const dimensions = keys.map((k, j) => {
      const col = rows.map((r) => r[j]);
      const numeric = col.every((v) => v === null || v === undefined || typeof v === "number");
      if (numeric) return {label: k, values: col.map((v) => (v === null || v === undefined ? NaN : v))};
      const cats = [...new Set(col.map(String))];
      return {label: k, values: col.map((v) => cats.indexOf(String(v))), tickvals: cats.map((_, i) => i), ticktext: cats};
    });
    if (!dimensions.length) { box.innerHTML = "<p class='muted'>choose numeric columns (params, metrics) to draw</p>"; return; }
    const color = dimensions[dimensions.length - 1].values;
    const known = color.filter((v) => !Number.isNaN(v));
    let cmin = Math.min(...known), cmax = Math.max(...known);
    if (!known.length) { cmin = 0; cmax = 1; } else if (cmin === cmax) { cmin -= 0.5; cmax += 0.5; }
    plot(box, [{type: "parcoords", dimensions, line: {color, cmin, cmax, colorscale: "Viridis", showscale: true}}],
      {margin: {l: 70, r: 70, t: 90, b: 20}, height: 420, title: {text: title, font: {size: 13}, y: 0.97}});
  };

  async function parallel(box, trials) {
    box.classList.remove("hidden");
    box.innerHTML = "<p class='muted'>loading…</p>";
    const url = `/api/parallel?${box.dataset.query}&dims=${encodeURIComponent(box.dataset.dims)}${trials ? "&trials=1" : ""}`;
    const data = await getJSON(url);
    box.innerHTML = "";
    const keys = data.columns.map((c) => c.key);
    parcoords(box, keys, data.runs.map((_, i) => keys.map((k) => data.values[k][i])), `${data.runs.length} runs`);
    const trialBox = $("#parallel-trials");
    if (!trialBox) return;
    const found = data.trials || [];
    trialBox.classList.toggle("hidden", !found.length);
    if (!found.length) return;
    const tkeys = [...new Set(found.flatMap((t) => Object.keys(t.values)))]
      .filter((k) => !/(^|\.)(index|seed)$/.test(k) && found.some((t) => t.values[k] !== found[0].values[k]));
    // params first, then metrics, the accuracy-like one last (it colours the lines)
    const isMetric = (k) => /acc|loss|score|auc|f1/.test(k);
    const metricLast = tkeys.filter((k) => !isMetric(k)).concat(tkeys.filter((k) => isMetric(k) && !/acc/.test(k)),
      tkeys.filter((k) => isMetric(k) && /acc/.test(k)));
    parcoords(trialBox, metricLast, found.map((t) => metricLast.map((k) => t.values[k])), `${found.length} search trials in these runs`);
  }

  // ---- run page ----------------------------------------------------------------------------
  function runPage(runId, live) {
    const box = $("#curves");
    const draw = async () => {
      const smooth = $("#smooth").value, logy = $("#logy").checked, logx = $("#logx").checked;
      const data = await getJSON(`/api/runs/${encodeURIComponent(runId)}/series?smooth=${smooth}&max_points=600`);
      const byStage = {};
      for (const c of data.curves) (byStage[c.stage] = byStage[c.stage] || []).push(c);
      // A curve needs more than one point: stages that reported final values only are in the table.
      const stages = Object.keys(byStage).filter((st) => byStage[st].some((c) => c.points > 1 || c.live));
      if (!stages.length) { box.innerHTML = "<p class='muted'>no curves: no stage reported a metric more than once yet</p>"; return; }
      $$("p", box).forEach((p) => p.remove());
      for (const stage of stages) {
        let el = $(`[data-curve-stage="${CSS.escape(stage)}"]`, box);
        if (!el) { el = document.createElement("div"); el.dataset.curveStage = stage; box.appendChild(el); }
        const multi = byStage[stage].filter((c) => c.points > 1);
        const curves = multi.length ? multi : byStage[stage];
        plot(el, curves.map((c) => ({x: c.steps, y: c.values, name: c.metric, mode: c.points > 1 ? "lines" : "markers"})),
          layoutFor(`${stage}${curves.some((c) => c.live) ? " (live)" : ""}`, logx, logy));
      }
    };
    ["#smooth", "#logy", "#logx"].forEach((s) => $(s).addEventListener("change", draw));
    draw();
    if (!live) return;
    const timer = setInterval(async () => {
      const st = await getJSON(`/api/runs/${encodeURIComponent(runId)}/status`);
      for (const n of st.graph.nodes) {
        const node = $(`#stage-graph [data-node="${CSS.escape(n.id)}"]`);
        if (node) { node.setAttribute("class", `node ${n.kind.toLowerCase()}`); $(".sub", node).textContent = n.sub; }
      }
      for (const s of st.stages) {
        const cell = $(`#stage-${CSS.escape(s.name)} [data-field=state]`);
        if (cell) { cell.textContent = PHASE_TEXT[s.phase] || s.phase; cell.className = `phase ${s.phase.toLowerCase()}`; }
      }
      const phase = $("#run-phase");
      phase.textContent = st.phase; phase.className = `badge phase ${st.phase.toLowerCase()}`;
      await draw();
      if (st.phase !== "Running") {
        clearInterval(timer);
        const badge = $("#live-badge"); if (badge) badge.remove();
        await swapFromPage(["#stages", "#artifacts", "#lineage"]);
      }
    }, 2000);
  }

  // ---- compare page -----------------------------------------------------------------------
  function comparePage(runs, names, live) {
    $("#show-all").addEventListener("change", (e) => $("#diff").classList.toggle("only-changed", !e.target.checked));
    const stageSel = $("#curve-stage"), metricSel = $("#curve-metric"), box = $("#compare-curves");
    const fillMetrics = () => {
      const metrics = names[stageSel.value] || [];
      metricSel.innerHTML = "";
      for (const m of metrics) { const o = document.createElement("option"); o.value = o.textContent = m; metricSel.appendChild(o); }
      const preferred = metrics.find((m) => m.startsWith("val_acc")) || metrics.find((m) => m.includes("acc")) || metrics[0];
      if (preferred) metricSel.value = preferred;
    };
    const preferredStage = Object.keys(names).find((s) => (names[s] || []).some((m) => m.startsWith("val_"))) || Object.keys(names)[0];
    if (preferredStage) stageSel.value = preferredStage;
    fillMetrics();
    const draw = async () => {
      if (!stageSel.value || !metricSel.value) { box.innerHTML = "<p class='muted'>no curves</p>"; return; }
      const group = $("#group-by").value, smooth = $("#smooth").value;
      const q = `runs=${runs.map(encodeURIComponent).join(",")}&stage=${encodeURIComponent(stageSel.value)}` +
        `&metric=${encodeURIComponent(metricSel.value)}&smooth=${smooth}&max_points=400&group_by=${encodeURIComponent(group)}`;
      const data = await getJSON(`/api/curves?${q}`);
      const traces = [];
      if (group) {
        const palette = ["#2f5dd0", "#d0602f", "#1f8a4c", "#8b3fa8", "#b7791f", "#1b7f95", "#c53030"];
        data.bands.forEach((b, i) => {
          const colour = palette[i % palette.length];
          traces.push({x: b.steps.concat([...b.steps].reverse()), y: b.high.concat([...b.low].reverse()), fill: "toself",
            fillcolor: colour, opacity: 0.18, line: {width: 0, color: colour}, hoverinfo: "skip", legendgroup: b.group,
            showlegend: false});
          traces.push({x: b.steps, y: b.mean, mode: "lines", line: {color: colour},
            name: `${group}=${b.group} (mean of ${b.runs.length})`, legendgroup: b.group});
        });
      } else {
        for (const c of data.curves) traces.push({x: c.steps, y: c.values, mode: c.points > 1 ? "lines" : "markers", name: c.runId});
      }
      plot(box, traces, layoutFor(`${stageSel.value} · ${metricSel.value}`, $("#logx").checked, $("#logy").checked));
    };
    stageSel.addEventListener("change", () => { fillMetrics(); draw(); });
    ["#curve-metric", "#smooth", "#logy", "#logx", "#group-by"].forEach((s) => $(s).addEventListener("change", draw));
    draw();
    const redrawParallel = () => parallel($("#parallel"), $("#with-trials").checked);
    $("#with-trials").addEventListener("change", redrawParallel);
    redrawParallel();
    if (live) setInterval(draw, 3000);
  }

  return {leaderboard, runPage, comparePage, parallel};
})();

// A page names its entry point and arguments on this script's tag (data-page, data-args): the
// board's Content-Security-Policy runs no inline script.
(() => {
  const tag = document.currentScript;
  const entry = tag && {leaderboard: Board.leaderboard, runPage: Board.runPage, comparePage: Board.comparePage}[tag.dataset.page];
  if (entry) entry(...JSON.parse(tag.dataset.args || "[]"));
})();
