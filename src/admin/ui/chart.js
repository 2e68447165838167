// The zone chart of the scaler console: one metric's zone average (left
// axis) with the policy's guides (thresholds, targets) drawn across it, and
// the server count (right axis) on the same time axis. Plain canvas; every
// line differs by its dash pattern as well as by its colour.
"use strict";
window.ScalerChart = (() => {
  const COLOURS = { metric: "#0072b2", servers: "#e69f00", guide: "#d55e00",
                    grid: "#e3e7ef", text: "#5b6375", start: "#8a93a6" };

  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function two(n) { return (n < 10 ? "0" : "") + n; }

  function clock(t, seconds) {
    const d = new Date(t * 1000);
    return two(d.getHours()) + ":" + two(d.getMinutes()) + (seconds ? ":" + two(d.getSeconds()) : "");
  }

  function label(v) {
    if (Math.abs(v) >= 100 || Number.isInteger(v)) return String(Math.round(v));
    return String(Number(v.toPrecision(3)));
  }

  // o: { points: [[t, servers, v0, ...]], index (of the value), guides:
  //      [{name, value}], now, span, started, max (the zone's) }
  function draw(canvas, o) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = "12px system-ui, sans-serif";
    const pad = { l: 46, r: 34, t: 10, b: 24 };
    const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
    const pts = o.points || [];
    const t1 = o.now;
    const first = pts.length ? pts[0][0] : t1;
    // from the first sample (at least a minute back) to now, at most the span
    const t0 = Math.max(t1 - o.span, Math.min(first, t1 - 60));
    const col = 2 + (o.index || 0);

    let vmax = 0, smax = Math.max(1, o.max || 0);
    for (const p of pts) {
      if (Number.isFinite(p[col])) vmax = Math.max(vmax, p[col]);
      smax = Math.max(smax, p[1]);
    }
    for (const gd of o.guides || []) vmax = Math.max(vmax, gd.value);
    vmax = niceCeil(vmax * 1.08);
    const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * pw;
    const yv = (v) => pad.t + ph - (v / vmax) * ph;
    const ys = (s) => pad.t + ph - (s / smax) * ph;

    // grid and the two value axes
    g.lineWidth = 1;
    g.fillStyle = COLOURS.text;
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + (ph * i) / 4;
      g.strokeStyle = COLOURS.grid;
      g.setLineDash([]);
      g.beginPath(); g.moveTo(pad.l, y); g.lineTo(pad.l + pw, y); g.stroke();
      g.textAlign = "right"; g.textBaseline = "middle";
      g.fillText(label((vmax * (4 - i)) / 4), pad.l - 6, y);
    }
    g.textAlign = "left";
    for (let s = 0; s <= smax; s += Math.max(1, Math.ceil(smax / 4)))
      g.fillText(String(s), pad.l + pw + 6, ys(s));

    // time: about five ticks, on round minutes or seconds
    const range = t1 - t0;
    const steps = [10, 15, 30, 60, 120, 300, 600, 900, 1800];
    const ticks = Math.max(2, Math.min(6, Math.floor(pw / 75))); // a label is about 60 px
    const step = steps.find((s) => range / s <= ticks) || 1800;
    g.textAlign = "center"; g.textBaseline = "top";
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      g.strokeStyle = COLOURS.grid;
      g.beginPath(); g.moveTo(x(t), pad.t); g.lineTo(x(t), pad.t + ph); g.stroke();
      g.fillText(clock(t, step < 60), x(t), pad.t + ph + 6);
    }

    // where this node's history starts
    if (o.started && o.started > t0 + range / 50) {
      g.strokeStyle = COLOURS.start;
      g.setLineDash([2, 3]);
      g.beginPath(); g.moveTo(x(o.started), pad.t); g.lineTo(x(o.started), pad.t + ph); g.stroke();
      const right = x(o.started) > pad.l + pw * 0.7;
      g.textAlign = right ? "right" : "left"; g.textBaseline = "top";
      g.fillText("history starts", x(o.started) + (right ? -4 : 4), pad.t + 2);
    }

    // the policy's guides
    g.lineWidth = 1.5;
    g.strokeStyle = COLOURS.guide;
    g.fillStyle = COLOURS.guide;
    g.textAlign = "left"; g.textBaseline = "bottom";
    for (const gd of o.guides || []) {
      g.setLineDash(gd.name === "tolerance" ? [1, 3] : [5, 4]);
      g.beginPath(); g.moveTo(pad.l, yv(gd.value)); g.lineTo(pad.l + pw, yv(gd.value)); g.stroke();
      if (gd.name !== "tolerance") g.fillText(gd.name + " " + label(gd.value), pad.l + 4, yv(gd.value) - 2);
    }

    // server count: a dashed step line
    g.setLineDash([7, 4]);
    g.lineWidth = 2;
    g.strokeStyle = COLOURS.servers;
    g.beginPath();
    pts.forEach((p, i) => {
      if (i === 0) g.moveTo(x(p[0]), ys(p[1]));
      else { g.lineTo(x(p[0]), ys(pts[i - 1][1])); g.lineTo(x(p[0]), ys(p[1])); }
    });
    if (pts.length) g.lineTo(x(t1), ys(pts[pts.length - 1][1]));
    g.stroke();

    // the metric: a solid line, broken where a value is missing
    g.setLineDash([]);
    g.lineWidth = 2.5;
    g.strokeStyle = COLOURS.metric;
    g.beginPath();
    let down = false;
    for (const p of pts) {
      if (!Number.isFinite(p[col])) { down = false; continue; }
      if (down) g.lineTo(x(p[0]), yv(p[col]));
      else g.moveTo(x(p[0]), yv(p[col]));
      down = true;
    }
    g.stroke();
  }

  return { draw };
})();
