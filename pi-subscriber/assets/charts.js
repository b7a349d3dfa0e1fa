/* The dashboard's uPlot charts over a window of SaSeries, as the registry lists them on
 * /series/metrics: the host totals in the main grid, each disk's, interface's and mount's
 * charts in the collapsed "per device" section (built only while it is open). On a banded window each line gets a min–max band around its average;
 * the min/max series are left out of the legend, whose average shows "(min–max)".
 * Exposes window.SaCharts. */
(function () {
  'use strict';

  const CHART_H = 180;          // plot height in CSS px (the legend comes below)
  const MAX_DEVICE_CHARTS = 24; // per-device charts drawn; the rest are counted
  const MB = 1e-6;              // bytes/s -> MB/s
  const C = { blue: '#4fa3ff', purple: '#b48cff', green: '#3ecf8e', orange: '#ff9f43', pink: '#ff6b81' };

  const isNum = (v) => typeof v === 'number' && isFinite(v);
  const $ = (id) => document.getElementById(id);

  // y from 0 up to a bit above the data (rates and load).
  const fromZero = (u, min, max) => [0, isNum(max) && max > 0 ? max * 1.1 : 1];

  // Temperature: always include both thresholds (70 and 85 °C).
  function tempRange(u, min, max) {
    const lo = isNum(min) ? Math.min(30, Math.floor((min - 5) / 10) * 10) : 30;
    const hi = isNum(max) ? Math.max(90, Math.ceil((max + 5) / 10) * 10) : 90;
    return [lo, hi];
  }

  // Lines: [label, metric, colour, options]; `band: false` keeps a line without a band.
  const line = (label, metric, color, o) => Object.assign({ label: label, metric: metric, color: color, band: true }, o || {});

  const PALETTE = [C.blue, C.pink, C.green, C.purple, C.orange];
  const RANGES = { zero: fromZero, percent: [0, 100], temperature: tempRange };
  // What a label key counts in the per-device summary ("2 disks, 1 interface").
  const NOUN = { device: 'disk', interface: 'interface', mount: 'mount', core: 'core', sensor: 'sensor' };

  /* The charts, built once from /series/metrics (the registry's `chart` hints): the lines
   * sharing a chart id form one chart, in registry order; `place` puts its host-wide values
   * on the main grid, each label's in the per-device section, or both. */
  let MAIN = [];
  let DEVICES = [];
  let WANTS = []; // what a window must hold for every chart: [{metric, band}]

  function define(metrics) {
    const byId = {}, order = [];
    (Array.isArray(metrics) ? metrics : []).forEach((m) => {
      const c = m && m.chart;
      if (!c || typeof c.id !== 'string') return;
      let def = byId[c.id];
      if (!def) {
        def = byId[c.id] = {
          id: c.id, title: String(c.title), unit: String(c.unit || ''), dec: c.decimals | 0,
          scale: isNum(c.scale) ? c.scale : 1, range: RANGES[c.range] || fromZero, place: c.place,
          key: (m.labels || [])[0] || null, lines: [],
          // A byte rate is shown in B/s, kB/s, MB/s or GB/s, whichever fits the window.
          bytes: m.unit === 'bytes/s',
          // The process list shown for the point under the cursor (/series/top's field).
          top: c.top === 'top_cpu' || c.top === 'top_rss' ? c.top : null,
        };
        if (c.range === 'temperature') {
          def.thresholds = [[70, '#ffb020'], [85, '#ff5c5c']];
          def.empty = 'No temperature data';
        }
        order.push(def);
      }
      const first = def.lines.length === 0;
      def.lines.push(line(String(c.line), m.metric, PALETTE[def.lines.length % PALETTE.length],
                          { band: !!c.band, fill: first && c.range === 'percent' && c.place === 'main' }));
    });
    MAIN = order.filter((d) => d.place === 'main' || d.place === 'both');
    DEVICES = order.filter((d) => d.key && (d.place === 'devices' || d.place === 'both'))
      .map((d) => Object.assign({}, d, { kind: NOUN[d.key] || d.key }));
    WANTS = order.reduce((a, d) => a.concat(d.lines.map((l) => ({ metric: l.metric, band: l.band }))), []);
    const grid = $('main-charts');
    grid.textContent = '';
    MAIN.forEach((d) => {
      const panel = el('div', 'panel');
      const h = el('h3', null, d.title + ' ');
      h.appendChild(el('span', 'unit', d.unit ? '(' + d.unit + ')' : ''));
      panel.appendChild(h);
      const c = el('div', 'chart');
      c.id = 'chart-' + d.id;
      panel.appendChild(c);
      if (d.top) {
        const t = el('p', 'top-procs muted', 'Point at the chart to see the processes behind it');
        t.id = 'top-' + d.id;
        t.setAttribute('aria-live', 'polite');
        panel.appendChild(t);
      }
      grid.appendChild(panel);
    });
  }

  /* ---------- the processes behind a point (charts whose hint names a list) ---------- */

  let shownWin = null; // the window drawn last (its host, step and tier)
  const MiB = 1048576;

  // Asks /series/top for the point under the cursor of `u` (debounced; the newest ask wins).
  function askTop(def, u) {
    const box = $('top-' + def.id), i = u.cursor.idx;
    if (!box || i == null || !shownWin) return;
    const t = u.data[0][i];
    if (!isNum(t)) return;
    const step = shownWin.tier === 'raw' ? 0 : shownWin.step;
    const url = 'series/top?host=' + encodeURIComponent(shownWin.host) + '&at=' + Math.round(t * 1000) + '&step=' + step;
    if (box.dataset.asked === url) return;
    box.dataset.asked = url;
    clearTimeout(box.saTimer);
    box.saTimer = setTimeout(() => {
      fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } })
        .then((r) => (r.ok ? r.json() : null))
        .then((j) => { if (box.dataset.asked === url) showTop(box, def.top, j); })
        .catch(() => { /* the next point asks again */ });
    }, 120);
  }

  // "Top CPU at 03:12:45 (minute peak): ffmpeg 187 % · postgres 12 %", each with its pid and
  // user on hover. Names are text, never markup.
  function showTop(box, which, j) {
    const list = j && j[which];
    box.textContent = '';
    const procs = list && Array.isArray(list.processes) ? list.processes : [];
    box.dataset.names = procs.map((p) => String(p.name)).join(',');
    if (!procs.length) {
      box.appendChild(el('span', 'muted', 'No process list stored for this time'));
      return;
    }
    box.dataset.ts = String(list.ts_ms);
    const when = new Date(list.ts_ms).toLocaleTimeString() + (j.tier === 'raw' ? '' : ' (minute peak)');
    box.appendChild(el('span', 'muted', (which === 'top_cpu' ? 'Top CPU' : 'Top memory') + ' at ' + when + ': '));
    procs.slice(0, 5).forEach((p, k) => {
      const v = which === 'top_cpu'
        ? (isNum(p.cpu_percent) ? p.cpu_percent.toFixed(p.cpu_percent < 10 ? 1 : 0) + ' %' : '—')
        : (isNum(p.rss_bytes) ? (p.rss_bytes / MiB).toFixed(p.rss_bytes < 10 * MiB ? 1 : 0) + ' MiB' : '—');
      if (k) box.appendChild(document.createTextNode(' · '));
      const item = el('span', 'proc', String(p.name) + ' ' + v);
      item.title = 'pid ' + p.pid + (p.user != null ? ', user ' + String(p.user) : '');
      box.appendChild(item);
    });
  }

  /* Puts every chart's cursor at `ms` (the page's #at= link: "what ran at 03:12"), which
   * asks for the processes as pointing there does. */
  function pointAt(ms) {
    Object.keys(charts).forEach((id) => {
      const u = charts[id].u;
      const left = u.valToPos(ms / 1000, 'x');
      if (isNum(left) && left >= 0 && left <= u.bbox.width / (window.devicePixelRatio || 1)) {
        u.setCursor({ left: left, top: 10 });
      }
    });
  }

  const charts = {}; // element id -> { u, key }
  let xwin = [0, 1];  // x range of every chart, epoch seconds (the window being shown)
  let lostNow = []; // regions of the window whose samples are lost for good (SaSeries.load)

  // A y tick with three significant digits at most (small rates do not all read "0").
  function tick(v) {
    if (!isNum(v)) return '';
    if (v === 0 || Math.abs(v) >= 100) return String(Math.round(v));
    return String(Number(v.toPrecision(3)));
  }

  // x tick labels on one short line: "17:45" (with seconds when ticks are closer than a
  // minute) within two days, "6 Dec" beyond (uPlot's
  // default adds a second line with the whole date, which runs off the chart's edge).
  function timeTicks(u, splits) {
    const span = u.scales.x.max - u.scales.x.min;
    const every = splits.length > 1 ? splits[1] - splits[0] : span;
    const clock = every < 60 ? { hour: '2-digit', minute: '2-digit', second: '2-digit' } : { hour: '2-digit', minute: '2-digit' };
    const px = window.devicePixelRatio || 1;
    u.ctx.save();
    u.ctx.font = (11 * px) + 'px system-ui, sans-serif';
    const labels = splits.map((s) => {
      const d = new Date(s * 1000);
      const text = span <= 2 * 86400
        ? d.toLocaleTimeString([], clock)
        : d.toLocaleDateString([], { day: 'numeric', month: 'short' });
      // A label centred on its tick must stay on the canvas: one that would run off an edge
      // is left out.
      const half = u.ctx.measureText(text).width / px / 2;
      const at = u.valToPos(s, 'x') + u.bbox.left / px;
      return at - half < 0 || at + half > u.width ? '' : text;
    });
    u.ctx.restore();
    return labels;
  }

  // The y axis as wide as its widest label needs (a rate's "0.00125" is not cut).
  function ySize(u, values) {
    if (!values || !values.length) return 40;
    const px = window.devicePixelRatio || 1;
    u.ctx.save();
    u.ctx.font = (11 * px) + 'px system-ui, sans-serif';
    const w = Math.max.apply(null, values.map((v) => u.ctx.measureText(String(v)).width / px));
    u.ctx.restore();
    return Math.max(40, Math.ceil(w) + 16);
  }

  function axis() {
    return {
      stroke: '#9aa4b2',
      font: '11px system-ui, sans-serif',
      grid: { stroke: 'rgba(255,255,255,0.07)', width: 1 },
      ticks: { stroke: 'rgba(255,255,255,0.15)', width: 1 },
    };
  }

  // Regions of the window whose samples are lost for good: hatched, with the count.
  function drawLost(u, ctx, b, px) {
    (lostNow || []).forEach((l) => {
      const x0 = Math.max(b.left, u.valToPos(l.from_ms / 1000, 'x', true));
      const x1 = Math.min(b.left + b.width, u.valToPos(l.to_ms / 1000, 'x', true));
      if (!(x1 > x0)) return;
      ctx.fillStyle = 'rgba(239, 83, 80, 0.18)';
      ctx.fillRect(x0, b.top, Math.max(x1 - x0, px), b.height);
      ctx.fillStyle = '#ef5350';
      ctx.textAlign = 'left';
      ctx.textBaseline = 'top';
      ctx.fillText(l.samples + ' lost', x0 + 2 * px, b.top + 2 * px);
    });
  }

  // hooks.draw: dashed horizontal threshold lines, lost regions, and a note when there's no data.
  function drawNotes(def) {
    return (u) => {
      const ctx = u.ctx, b = u.bbox, px = window.devicePixelRatio || 1;
      ctx.save();
      ctx.font = (11 * px) + 'px system-ui, sans-serif';
      drawLost(u, ctx, b, px);
      ctx.lineWidth = px;
      ctx.setLineDash([6 * px, 4 * px]);
      ctx.font = (11 * px) + 'px system-ui, sans-serif';
      ctx.textAlign = 'right';
      ctx.textBaseline = 'bottom';
      (def.thresholds || []).forEach((l) => {
        const y = Math.round(u.valToPos(l[0], 'y', true)) + 0.5;
        if (y < b.top || y > b.top + b.height) return;
        ctx.strokeStyle = ctx.fillStyle = l[1];
        ctx.beginPath();
        ctx.moveTo(b.left, y);
        ctx.lineTo(b.left + b.width, y);
        ctx.stroke();
        ctx.fillText(l[0] + ' ' + def.unit, b.left + b.width - 4 * px, y - 2 * px);
      });
      if (!u.data[1] || !u.data[1].some(isNum)) {
        ctx.fillStyle = '#8b94a3';
        ctx.textAlign = 'center';
        ctx.textBaseline = 'middle';
        ctx.fillText(def.empty || 'No data in this range', b.left + b.width / 2, b.top + b.height / 2);
      }
      ctx.restore();
    };
  }

  /* The uPlot series and bands of a chart, and the columns to fetch for it: per line its
   * average, then (banded) its max and min. */
  function layout(def, win, label) {
    const cols = [], series = [], bands = [];
    const fmt = (v) => (isNum(v) ? v.toFixed(def.dec) + (def.unit ? ' ' + def.unit : '') : '—');
    def.lines.forEach((l) => {
      const banded = win.band && l.band;
      const avgIdx = series.length + 1;
      cols.push(SaSeries.points(win, l.metric, 'avg', label));
      series.push({
        label: l.label, stroke: l.color, width: 1.5, spanGaps: false,
        fill: l.fill && !banded ? l.color + '26' : undefined,
        value: (u, v, si, i) => (banded && i != null && isNum(v)
          ? fmt(v) + ' (' + fmt(u.data[avgIdx + 2][i]) + '–' + fmt(u.data[avgIdx + 1][i]) + ')' : fmt(v)),
      });
      if (!banded) return;
      ['max', 'min'].forEach((agg) => {
        cols.push(SaSeries.points(win, l.metric, agg, label));
        series.push({ label: l.label + ' ' + agg, class: 'band-edge', stroke: l.color + '59', width: 1,
                      spanGaps: false, points: { show: false }, value: (u, v) => fmt(v) });
      });
      bands.push({ series: [avgIdx + 1, avgIdx + 2], fill: l.color + '2e' });
    });
    return { cols: cols, series: series, bands: bands };
  }

  // B/s, kB/s, MB/s or GB/s for a byte rate peaking at `max` B/s: [unit, factor, decimals].
  function byteUnit(max) {
    if (!(max >= 1e3)) return ['B/s', 1, 0];
    if (max < 1e6) return ['kB/s', 1e-3, 1];
    if (max < 1e9) return ['MB/s', 1e-6, 2];
    return ['GB/s', 1e-9, 2];
  }

  // A byte-rate chart's unit for this window (its largest value), else the chart's own.
  function scaled(def, win, label) {
    if (!def.bytes) return def;
    let max = 0;
    def.lines.forEach((l) => ['avg', 'max'].forEach((agg) => {
      (SaSeries.points(win, l.metric, agg, label) || []).forEach((p) => {
        if (Array.isArray(p) && isNum(p[1]) && p[1] > max) max = p[1];
      });
    }));
    const u = byteUnit(max);
    return Object.assign({}, def, { unit: u[0], scale: u[1], dec: u[2] });
  }

  // Draws (or updates) one chart in the element `id`; returns its columns.
  function draw(id, def0, win, label) {
    const target = $(id);
    const def = scaled(def0, win, label);
    const unitEl = target.parentNode && target.parentNode.querySelector('h3 .unit');
    if (unitEl) unitEl.textContent = def.unit ? '(' + def.unit + ')' : '';
    const lay = layout(def, win, label);
    const data = SaSeries.columns(win, lay.cols, def.scale || 1);
    const key = lay.series.map((s) => s.label).join('|') + '|' + win.band + '|' + def.unit;
    const have = charts[id];
    if (have && have.key === key && have.u.root.parentNode === target) {
      have.u.setData(data);
      return data;
    }
    if (have) have.u.destroy();
    const opts = {
      width: target.clientWidth || 400,
      height: CHART_H,
      cursor: { sync: { key: 'pi' }, drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: () => [xwin[0], xwin[1]] },
        y: { range: def.range || fromZero },
      },
      axes: [Object.assign(axis(), { space: 90, values: timeTicks }),
             Object.assign(axis(), { size: ySize, values: (u, splits) => splits.map(tick) })],
      series: [{ value: (u, v) => (v == null ? '—' : new Date(v * 1000).toLocaleString()) }].concat(lay.series),
      bands: lay.bands,
      hooks: { draw: [drawNotes(def)], setCursor: def.top ? [(u) => askTop(def, u)] : [] },
    };
    charts[id] = { u: new uPlot(opts, data, target), key: key };
    return data;
  }

  function drop(prefix) {
    Object.keys(charts).forEach((id) => {
      if (id.indexOf(prefix) === 0) { charts[id].u.destroy(); delete charts[id]; }
    });
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  // Per-device charts of `win`: names in the summary always, charts only while open. A
  // device's charts stay together (a disk's throughput, busy % and I/O wait).
  function renderDevices(win) {
    const section = $('devices'), box = $('device-charts');
    const found = DEVICES.map((d) => ({ def: d, names: SaSeries.labels(win, d.lines.map((l) => l.metric)) }));
    const byKind = {}, kinds = [];
    found.forEach((f) => f.names.forEach((n) => {
      if (!byKind[f.def.kind]) { byKind[f.def.kind] = []; kinds.push(f.def.kind); }
      if (byKind[f.def.kind].indexOf(n) < 0) byKind[f.def.kind].push(n);
    }));
    const total = kinds.reduce((n, k) => n + byKind[k].length, 0);
    const counts = kinds.map((k) => byKind[k].length + ' ' + k + (byKind[k].length > 1 ? 's' : ''));
    $('devices-count').textContent = counts.length ? '(' + counts.join(', ') + ')' : '(none)';
    section.dataset.count = String(total);
    xwin = xRange(win);
    if (!section.open) { drop('dev-'); box.textContent = ''; delete box.dataset.key; return; }
    const list = [];
    kinds.forEach((k) => byKind[k].slice().sort().forEach((n) => found.forEach((f) => {
      if (f.def.kind === k && f.names.indexOf(n) >= 0) list.push({ def: f.def, name: n });
    })));
    const shown = list.slice(0, MAX_DEVICE_CHARTS);
    const key = shown.map((s) => s.def.kind + '\u0000' + s.name).join('\u0001');
    if (box.dataset.key !== key) {
      drop('dev-');
      box.textContent = '';
      shown.forEach((s, i) => {
        const panel = el('div', 'panel');
        panel.dataset.kind = s.def.kind;
        panel.dataset.label = s.name;
        const h = el('h3', null, s.def.title + ' ');
        const name = el('span', 'dev-name', s.name);
        name.title = s.name; // the full name on hover when the panel cuts it
        h.appendChild(name);
        h.appendChild(document.createTextNode(' '));
        h.appendChild(el('span', 'unit', s.def.unit ? '(' + s.def.unit + ')' : ''));
        panel.appendChild(h);
        const c = el('div', 'chart');
        c.id = 'dev-' + i;
        panel.appendChild(c);
        box.appendChild(panel);
      });
      if (list.length > shown.length) box.appendChild(el('p', 'muted', '+' + (list.length - shown.length) + ' more not charted'));
      if (!list.length) box.appendChild(el('p', 'empty', 'No per-device series in this range'));
      box.dataset.key = key;
    }
    shown.forEach((s, i) => {
      const data = draw('dev-' + i, s.def, win, s.name);
      $('dev-' + i).parentNode.dataset.points = String(data[1].filter(isNum).length);
    });
  }

  /* The x range shown, epoch seconds: the window, but starting where its data does when that
   * is well inside it (a fresh install's first minutes fill the chart, not a sliver at its
   * right edge), two steps before the first point. */
  function xRange(win) {
    let first = Infinity;
    WANTS.forEach((w) => (SaSeries.points(win, w.metric, 'avg', '') || []).forEach((p) => {
      if (Array.isArray(p) && isNum(p[1]) && p[0] < first) first = p[0];
    }));
    const from = isNum(first) && first - 2 * win.step * 1000 > win.from + 0.05 * (win.to - win.from)
      ? first - 2 * win.step * 1000 : win.from;
    return [from / 1000, win.to / 1000];
  }

  // Draws every chart of `win`; sets the body's data-* that tests and tools can read.
  function render(win) {
    if (typeof uPlot !== 'function') throw new Error('chart library (uPlot) failed to load');
    $('charts').hidden = false; // must be visible before measuring widths
    xwin = xRange(win);
    lostNow = win.lost || [];
    shownWin = win;
    let cpu = null;
    MAIN.forEach((def) => {
      const data = draw('chart-' + def.id, def, win, '');
      if (cpu === null) cpu = data; // the first chart's points: what tests and tools read
    });
    renderDevices(win);
    fit();
    const b = document.body.dataset;
    b.points = String(cpu ? cpu[1].filter(isNum).length : 0);
    b.slots = String(cpu ? cpu[0].length : 0);
    b.step = String(win.step);
    b.tier = win.tier;
    b.band = win.band ? '1' : '0';
    b.lost = String(lostNow.reduce((n, l) => n + l.samples, 0));
    b.range = String(win.range);
    b.xfrom = String(Math.round(xwin[0] * 1000));
    b.ready = '1';
  }

  // Match every chart's width to its container (window resize, layout changes).
  function fit() {
    Object.keys(charts).forEach((id) => {
      const u = charts[id].u, w = $(id) ? $(id).clientWidth : 0;
      if (w > 0 && Math.abs(w - u.width) > 1) u.setSize({ width: w, height: CHART_H });
    });
  }

  window.SaCharts = {
    define: define,
    defined: () => WANTS.length > 0,
    wants: () => WANTS,
    render: render,
    renderDevices: renderDevices,
    fit: fit,
    pointAt: pointAt,
    plots: () => Object.keys(charts).map((id) => ({ id: id, u: charts[id].u })),
  };
})();
