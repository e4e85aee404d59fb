"use strict";
// mmstats-serve's live page: poll ../live with the page's own query, keep the last points
// of each chosen field and draw them as SVG polylines. Nothing is loaded from elsewhere.
(function () {
  const setup = JSON.parse(document.getElementById("setup").textContent);
  const keep = 300;
  const svgNs = "http://www.w3.org/2000/svg";
  const colours = ["#1f77b4", "#d62728", "#2ca02c"];
  const state = setup.fields.map(() => ({ previous: null, series: [[], [], []], names: [] }));
  let polls = 0;

  function quantile(buckets, total, q) {
    const rank = Math.max(1, Math.ceil(q * total));
    let seen = 0;
    for (const [low, high, n] of buckets) {
      seen += n;
      if (seen >= rank) return low + (high - low) / 2;
    }
    return buckets.length ? buckets[buckets.length - 1][1] : 0;
  }

  // The observations a histogram gained since the previous poll, as [low, high, n].
  function added(now, before) {
    const old = new Map();
    if (before) for (const [low, , n] of before.buckets) old.set(low, n);
    const out = [];
    for (const [low, high, n] of now.buckets) {
      const d = n - (old.get(low) || 0);
      if (d > 0) out.push([low, high, d]);
    }
    return out;
  }

  function text(value) {
    if (typeof value === "number") {
      return Number.isInteger(value) ? String(value) : value.toPrecision(6).replace(/\.?0+$/, "");
    }
    return value === null || value === undefined ? "" : String(value);
  }

  function draw(index) {
    const svg = document.getElementById("chart-" + index);
    const { series, names } = state[index];
    const points = series.flat();
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (!points.length) return;
    const width = +svg.getAttribute("width"), height = +svg.getAttribute("height");
    let t0 = Infinity, t1 = -Infinity, lo = Infinity, hi = -Infinity;
    for (const [t, y] of points) {
      t0 = Math.min(t0, t); t1 = Math.max(t1, t);
      lo = Math.min(lo, y); hi = Math.max(hi, y);
    }
    if (hi === lo) { const pad = Math.abs(hi) * 0.1 || 1; hi += pad; lo -= pad; }
    const x = (t) => (t1 === t0 ? width - 4 : 4 + ((t - t0) / (t1 - t0)) * (width - 8));
    const y = (v) => height - 4 - ((v - lo) / (hi - lo)) * (height - 8);
    series.forEach((line, k) => {
      if (!line.length) return;
      const poly = document.createElementNS(svgNs, "polyline");
      poly.setAttribute("fill", "none");
      poly.setAttribute("stroke", colours[k]);
      poly.setAttribute("stroke-width", "1.5");
      poly.setAttribute("points", line.map(([t, v]) => x(t).toFixed(1) + "," + y(v).toFixed(1)).join(" "));
      svg.appendChild(poly);
    });
    document.getElementById("axis-" + index).textContent =
      text(lo) + " … " + text(hi) + (names.length ? " (" + names.join(", ") + ")" : "");
  }

  function update(answer) {
    polls += 1;
    document.getElementById("polls").textContent = String(polls);
    document.getElementById("when").textContent = new Date(answer.ts * 1000).toISOString();
    setup.fields.forEach((label, index) => {
      const entry = answer.fields[label] || { kind: "missing" };
      const field = state[index];
      const previous = field.previous;
      const latest = document.getElementById("latest-" + index);
      const push = (k, v) => {
        field.series[k].push([answer.ts, v]);
        if (field.series[k].length > keep) field.series[k].shift();
      };
      if (entry.kind === "counter" || (entry.kind === "gauge" && setup.rate.includes(label))) {
        let shown = text(entry.value);
        if (previous && answer.ts > previous.ts) {
          const rate = (entry.value - previous.value) / (answer.ts - previous.ts);
          push(0, rate);
          shown += " (" + text(rate) + "/s)";
        }
        field.names = ["per second"];
        latest.textContent = shown;
      } else if (entry.kind === "histogram") {
        const gained = added(entry, previous);
        const total = gained.reduce((s, b) => s + b[2], 0);
        let shown = "count " + entry.count;
        if (previous && total > 0) {
          const qs = [0.5, 0.95, 0.99].map((q) => quantile(gained, total, q));
          qs.forEach((v, k) => push(k, v));
          shown += " · p50 " + text(qs[0]) + " · p95 " + text(qs[1]) + " · p99 " + text(qs[2]);
        }
        field.names = ["p50", "p95", "p99"];
        latest.textContent = shown;
      } else if (entry.kind === "gauge") {
        push(0, entry.value);
        latest.textContent = text(entry.value);
      } else if (entry.kind === "text") {
        latest.textContent = entry.value;
      } else {
        latest.textContent = entry.kind === "error" ? entry.error : "no file has it";
      }
      field.previous = { ts: answer.ts, value: entry.value, buckets: entry.buckets || [] };
      draw(index);
    });
  }

  function poll() {
    fetch("../live?" + setup.query, { cache: "no-store" })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
      .then(update)
      .catch((e) => { document.getElementById("when").textContent = "error: " + e.message; })
      .finally(() => setTimeout(poll, setup.interval));
  }
  if (setup.fields.length) poll();
})();
