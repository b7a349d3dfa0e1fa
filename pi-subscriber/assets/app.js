/* Server Analytics dashboard for pi-subscriber.
 * Polls the JSON API (relative URLs, so it works under a reverse-proxy prefix)
 * every 5 s and updates host cards, uPlot charts and the jobs table in place.
 * Plain ES2017, no build step; uPlot is loaded from assets/uPlot.iife.min.js. */
(function () {
  'use strict';

  const REFRESH_MS = 5000;       // poll period
  const FULL_RELOAD_MS = 60000;  // re-fetch the whole history window this often
  const FETCH_TIMEOUT_MS = 8000;
  const CHART_H = 180;           // plot height in CSS px (the legend comes below)
  const SKEW_MS = 300000;        // `to` slack, in case the Pi's clock runs ahead
  // `health` answers 503 while stale (and before the first snapshot); browsers
  // log every 5xx response as a console error, so by default the badge is
  // derived from `hosts` with the same rule (see healthOf). Set true to poll it.
  const USE_HEALTH = false;

  const $ = (id) => document.getElementById(id);

  const state = {
    range: 3600,      // seconds shown in the charts
    host: null,       // host whose history is charted
    hosts: [],        // last good answer of `hosts`, sorted by name
    metrics: {},      // host -> latest `metrics` snapshot
    rows: [],         // history rows of rowsHost over the window
    rowsKey: '',      // "host|range" the rows belong to
    rowsHost: '',
    fullAt: 0,        // when the rows were last fetched whole (ms)
    window: [0, 1],   // x range of the charts, epoch seconds
    charts: {},       // chart id -> uPlot instance
    errors: [],
    jobsShown: false, // a jobs answer has been rendered at least once
    busy: false,
    again: false,
    timer: 0,
  };

  /* ---------- chart definitions ---------- */

  const C = { blue: '#4fa3ff', purple: '#b48cff', green: '#3ecf8e', orange: '#ff9f43', pink: '#ff6b81' };
  const MB = 1e-6; // bytes/s -> MB/s

  const memUsedPct = (r) => {
    if (r.memory_used_percent != null) return r.memory_used_percent;
    if (r.memory_total_mb > 0 && r.memory_available_mb != null) {
      return 100 * (r.memory_total_mb - r.memory_available_mb) / r.memory_total_mb;
    }
    return null;
  };

  const CHARTS = [
    { id: 'cpu', unit: '%', dec: 1, range: [0, 100],
      series: [{ label: 'CPU', key: 'cpu_usage_percent', color: C.blue, fill: true }] },
    { id: 'load', unit: '', dec: 2,
      series: [{ label: '1 min', key: 'load_1m', color: C.blue },
               { label: '5 min', key: 'load_5m', color: C.purple },
               { label: '15 min', key: 'load_15m', color: C.green }] },
    { id: 'mem', unit: '%', dec: 1, range: [0, 100],
      series: [{ label: 'Used', key: memUsedPct, color: C.green, fill: true }] },
    { id: 'temp', unit: '°C', dec: 1, range: tempRange,
      thresholds: [[70, '#ffb020'], [85, '#ff5c5c']],
      series: [{ label: 'CPU', key: 'cpu_temp_c', color: C.orange }] },
    { id: 'disk', unit: 'MB/s', dec: 2, scale: MB,
      series: [{ label: 'Read', key: 'disk_read_bytes_rate', color: C.blue },
               { label: 'Write', key: 'disk_write_bytes_rate', color: C.pink }] },
    { id: 'net', unit: 'MB/s', dec: 2, scale: MB,
      series: [{ label: 'Rx', key: 'network_rx_bytes_rate', color: C.green },
               { label: 'Tx', key: 'network_tx_bytes_rate', color: C.purple }] },
  ];

  /* ---------- small helpers ---------- */

  const isNum = (v) => typeof v === 'number' && isFinite(v);
  const fix = (v, d) => (isNum(v) ? v.toFixed(d) : '—');
  const get = (o, path) => path.split('.').reduce((a, k) => (a == null ? null : a[k]), o);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function fmtAgo(tsSec) {
    if (!isNum(tsSec)) return '—';
    const s = Math.max(0, Math.round(Date.now() / 1000 - tsSec));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }

  function fmtUptime(s) {
    if (!isNum(s)) return '—';
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d > 0) return d + ' d ' + h + ' h';
    if (h > 0) return h + ' h ' + m + ' min';
    return m + ' min';
  }

  function fmtDuration(s) {
    if (!isNum(s)) return '—';
    if (s < 60) return s.toFixed(1) + ' s';
    const t = Math.round(s), h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60);
    return h > 0 ? h + ' h ' + m + ' min' : m + ' min ' + (t % 60) + ' s';
  }

  function fmtTime(ms) {
    if (!isNum(ms)) return '—';
    return new Date(ms).toLocaleString([], {
      month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
  }

  /* ---------- fetching ---------- */

  // GET a relative path and parse JSON. Statuses in `okStatuses` (e.g. 503 from
  // `health`) are accepted as long as the body is JSON; anything else throws.
  async function getJSON(path, okStatuses) {
    const name = path.split('?')[0];
    const ctrl = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = ctrl ? setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS) : 0;
    let res;
    try {
      res = await fetch(path, { cache: 'no-store', headers: { Accept: 'application/json' },
                                signal: ctrl ? ctrl.signal : undefined });
    } catch (e) {
      throw new Error(name + ': ' + (e && e.name === 'AbortError' ? 'timed out' : 'server unreachable'));
    } finally {
      clearTimeout(timer);
    }
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (res.ok || (okStatuses && okStatuses.indexOf(res.status) >= 0 && body)) return body;
    throw new Error(name + ': ' + (body && body.error ? body.error : 'HTTP ' + res.status));
  }

  // Record an error for the error line and resolve to null instead of rejecting.
  const soft = (p) => p.catch((e) => { state.errors.push(e.message || String(e)); return null; });

  async function loadMetrics(host) {
    const m = await soft(getJSON('metrics?host=' + encodeURIComponent(host)));
    if (m) state.metrics[host] = m;
  }

  // Fetch history for the selected host: whole window on host/range change (and
  // every FULL_RELOAD_MS), otherwise only rows newer than the last one we have.
  async function loadHistory() {
    const host = state.host, now = Date.now(), from = now - state.range * 1000;
    const key = host + '|' + state.range;
    const full = key !== state.rowsKey || !state.rows.length || now - state.fullAt > FULL_RELOAD_MS;
    const since = full ? from : state.rows[state.rows.length - 1].time + 1;
    const rows = await getJSON('history?host=' + encodeURIComponent(host) +
                               '&from=' + Math.floor(since) + '&to=' + (now + SKEW_MS));
    if (!Array.isArray(rows)) throw new Error('history: unexpected answer');
    state.rows = full ? rows : state.rows.concat(rows).filter((r) => r.time >= from);
    if (full) state.fullAt = now;
    state.rowsKey = key;
    state.rowsHost = host;
    const last = state.rows.length ? state.rows[state.rows.length - 1].time : 0;
    state.window = [from / 1000, Math.max(now, last) / 1000];
  }

  /* ---------- refresh loop ---------- */

  async function refresh() {
    if (state.busy) { state.again = true; return; }
    state.busy = true;
    clearTimeout(state.timer);
    state.errors = [];
    try {
      const res = await Promise.all([
        soft(getJSON('hosts')),
        soft(getJSON('events?limit=20')),
        USE_HEALTH ? soft(getJSON('health', [503])) : null,
      ]);
      if (Array.isArray(res[0])) state.hosts = res[0];  // keep the last good list on failure
      renderBadge(USE_HEALTH ? res[2] : healthOf(Array.isArray(res[0]) ? res[0] : null));
      pickHost();
      // Only ask for snapshots of hosts that have one (avoids expected 503s).
      await Promise.all(state.hosts.filter((h) => h.last_seq != null).map((h) => loadMetrics(h.host)));
      renderHosts();
      if (Array.isArray(res[1])) renderJobs(res[1]);
      else if (!state.jobsShown) emptyJobs('Job events unavailable');
      if (state.host) {
        try {
          await loadHistory();
          renderCharts();
        } catch (e) {
          state.errors.push(e.message || String(e));
        }
      } else {
        $('charts').hidden = true;
      }
      $('updated').textContent = 'Updated ' + new Date().toLocaleTimeString();
    } catch (e) {
      state.errors.push('render: ' + (e.message || String(e)));
    } finally {
      renderErrors();
      state.busy = false;
      if (state.again) {
        state.again = false;
        refresh();
      } else {
        state.timer = setTimeout(tick, REFRESH_MS);
      }
    }
  }

  // Timer callback: skip polling while the tab is hidden.
  function tick() {
    if (document.hidden) state.timer = setTimeout(tick, REFRESH_MS);
    else refresh();
  }

  // Keep the selected host if it still exists, else fall back to the first.
  function pickHost() {
    const names = state.hosts.map((h) => h.host);
    if (names.indexOf(state.host) < 0) {
      const withData = state.hosts.filter((h) => h.history_rows > 0)[0];
      state.host = withData ? withData.host : names.length ? names[0] : null;
    }
    const sel = $('host-select');
    if (sel.dataset.names !== names.join('\n')) {
      sel.textContent = '';
      names.forEach((n) => sel.appendChild(new Option(n, n)));
      sel.dataset.names = names.join('\n');
    }
    if (state.host) sel.value = state.host;
    $('host-picker').hidden = names.length < 2;
  }

  function selectHost(name) {
    if (!name || name === state.host) return;
    state.host = name;
    pickHost();
    markSelected();
    refresh();
  }

  /* ---------- rendering: header, errors ---------- */

  // The overall status, computed from `hosts` with the same rule as the
  // server's `health` ("ok" iff there is a host and none is stale).
  function healthOf(hosts) {
    if (!hosts) return null;
    return { status: hosts.length && hosts.every((h) => !h.stale) ? 'ok' : 'stale' };
  }

  function renderBadge(health) {
    const b = $('badge');
    const ok = health && health.status === 'ok';
    b.className = 'badge ' + (!health ? 'unknown' : ok ? 'ok' : 'stale');
    b.textContent = !health ? '?' : ok ? 'OK' : 'STALE';
    b.title = !health ? 'Health unavailable' : 'Overall health: ' + health.status;
  }

  function renderErrors() {
    const uniq = state.errors.filter((e, i, a) => a.indexOf(e) === i);
    const p = $('error');
    p.textContent = uniq.length ? '⚠ ' + uniq.join(' · ') : '';
    p.hidden = !uniq.length;
  }

  /* ---------- rendering: host cards ---------- */

  function renderHosts() {
    const box = $('hosts');
    box.textContent = '';
    if (!state.hosts.length) {
      box.appendChild(el('p', 'empty', 'Waiting for the first snapshot…'));
      return;
    }
    state.hosts.forEach((h) => box.appendChild(hostCard(h, state.metrics[h.host] || {})));
  }

  function hostCard(h, m) {
    const card = el('article', 'card' + (h.stale ? ' is-stale' : '') + (h.host === state.host ? ' selected' : ''));
    card.dataset.host = h.host;
    card.tabIndex = 0;
    card.title = 'Show charts for ' + h.host;

    const head = el('div', 'card-head');
    head.appendChild(el('h3', null, h.host));
    head.appendChild(el('span', 'badge ' + (h.stale ? 'stale' : 'ok'), h.stale ? 'STALE' : 'OK'));
    const status = h.status || m.status;
    head.appendChild(el('span', 'status ' + (status || ''), status || '—'));
    card.appendChild(head);

    const total = get(m, 'memory.total_mb'), avail = get(m, 'memory.available_mb');
    const used = isNum(total) && isNum(avail) ? total - avail : null;
    const swapUsed = get(m, 'memory.swap_used_mb'), swapTotal = get(m, 'memory.swap_total_mb');
    const temp = get(m, 'thermal.cpu_temp_c');
    const mbs = (a, b) => fix(isNum(a) ? a * MB : null, 2) + ' / ' + fix(isNum(b) ? b * MB : null, 2) + ' MB/s';
    const gib = (mb) => fix(isNum(mb) ? mb / 1024 : null, 1);
    const cpu = get(m, 'cpu.usage_percent');

    const rows = [
      ['CPU', isNum(cpu) ? cpu.toFixed(1) + ' %' : '—'],
      ['Load 1/5/15', [fix(get(m, 'cpu.load_1m'), 2), fix(get(m, 'cpu.load_5m'), 2), fix(get(m, 'cpu.load_15m'), 2)].join(' / ')],
      ['Memory', isNum(total) ? gib(used) + ' / ' + gib(total) + ' GiB' : '—'],
      ['Swap used', isNum(swapUsed) ? gib(swapUsed) + (isNum(swapTotal) ? ' / ' + gib(swapTotal) : '') + ' GiB' : '—'],
      ['CPU temp', isNum(temp) ? temp.toFixed(1) + ' °C' : '—'],
      ['Disk R / W', mbs(get(m, 'disk.read_bytes_rate'), get(m, 'disk.write_bytes_rate'))],
      ['Net Rx / Tx', mbs(get(m, 'network.rx_bytes_rate'), get(m, 'network.tx_bytes_rate'))],
      ['Last seen', fmtAgo(h.last_seen_ts)],
      ['Uptime', fmtUptime(m.uptime_s)],
    ];
    const dl = el('dl');
    rows.forEach((r) => { dl.appendChild(el('dt', null, r[0])); dl.appendChild(el('dd', null, r[1])); });
    card.appendChild(dl);
    const fs = window.SaFilesystems ? window.SaFilesystems.bars(m.filesystems) : null;
    if (fs) card.appendChild(fs);
    return card;
  }

  function markSelected() {
    const cards = $('hosts').querySelectorAll('.card');
    for (let i = 0; i < cards.length; i++) cards[i].classList.toggle('selected', cards[i].dataset.host === state.host);
  }

  /* ---------- rendering: jobs ---------- */

  // Pair job_start/job_end by run_id; newest start first.
  function renderJobs(events) {
    const runs = {};
    events.forEach((e) => {
      if (!e || !e.run_id) return;
      const r = runs[e.run_id] || (runs[e.run_id] = {});
      if (e.type === 'job_end') r.end = e; else if (e.type === 'job_start') r.start = e;
    });
    const list = Object.keys(runs).map((id) => runs[id])
      .sort((a, b) => ((b.start || b.end).start_ts_ms || 0) - ((a.start || a.end).start_ts_ms || 0));

    state.jobsShown = true;
    if (!list.length) return emptyJobs('No jobs yet');
    const body = $('jobs');
    body.textContent = '';
    list.forEach((r) => {
      const e = r.end || r.start;
      const tr = el('tr');
      const res = jobResult(r.end);
      const dur = r.end ? fmtDuration(r.end.duration_s)
        : isNum(e.start_ts_ms) ? fmtDuration(Math.max(0, (Date.now() - e.start_ts_ms) / 1000)) + '…' : '—';
      tr.appendChild(el('td', null, e.name || '—'));
      tr.appendChild(el('td', null, e.host || '—'));
      tr.appendChild(el('td', 'num', fmtTime(e.start_ts_ms)));
      tr.appendChild(el('td', 'num', dur));
      tr.appendChild(el('td', res[1], res[0]));
      if (r.end && (r.end.output_tail || r.end.error)) tr.title = r.end.error || r.end.output_tail;
      body.appendChild(tr);
    });
  }

  function emptyJobs(text) {
    const body = $('jobs'), tr = el('tr'), td = el('td', 'empty', text);
    td.colSpan = 5;
    tr.appendChild(td);
    body.textContent = '';
    body.appendChild(tr);
  }

  // [text, css class] for a run's outcome.
  function jobResult(end) {
    if (!end) return ['running', 'res-run'];
    if (end.signal != null) return ['signal ' + end.signal, 'res-bad'];
    if (end.exit_code != null) return ['rc=' + end.exit_code, end.exit_code === 0 ? 'res-ok' : 'res-bad'];
    if (end.error) return ['failed to start', 'res-bad'];
    return ['—', ''];
  }

  /* ---------- rendering: charts ---------- */

  // Rows -> uPlot columns. A hole in the data (> 3x the usual spacing) gets a
  // null point so uPlot breaks the line there instead of bridging it.
  function columns(rows, def) {
    const dts = [];
    for (let i = 1; i < rows.length; i++) dts.push(rows[i].time - rows[i - 1].time);
    dts.sort((a, b) => a - b);
    const gap = dts.length ? Math.max(3 * dts[dts.length >> 1], 1000) : Infinity;
    const xs = [], ys = def.series.map(() => []);
    rows.forEach((r, i) => {
      if (i > 0 && r.time - rows[i - 1].time > gap) {
        xs.push((r.time + rows[i - 1].time) / 2000);
        ys.forEach((col) => col.push(null));
      }
      xs.push(r.time / 1000);
      def.series.forEach((s, j) => {
        const v = typeof s.key === 'function' ? s.key(r) : r[s.key];
        ys[j].push(isNum(v) ? v * (def.scale || 1) : null);
      });
    });
    return [xs].concat(ys);
  }

  function axis() {
    return {
      stroke: '#9aa4b2',
      font: '11px system-ui, sans-serif',
      grid: { stroke: 'rgba(255,255,255,0.07)', width: 1 },
      ticks: { stroke: 'rgba(255,255,255,0.15)', width: 1 },
    };
  }

  // y from 0 up to a bit above the data (rates and load).
  function fromZero(u, min, max) {
    return [0, isNum(max) && max > 0 ? max * 1.1 : 1];
  }

  // Temperature: always include both thresholds (70 and 85 °C).
  function tempRange(u, min, max) {
    const lo = isNum(min) ? Math.min(30, Math.floor((min - 5) / 10) * 10) : 30;
    const hi = isNum(max) ? Math.max(90, Math.ceil((max + 5) / 10) * 10) : 90;
    return [lo, hi];
  }

  // hooks.draw: dashed horizontal threshold lines, and a note when there's no data.
  function drawThresholds(lines) {
    return (u) => {
      const ctx = u.ctx, b = u.bbox, px = window.devicePixelRatio || 1;
      ctx.save();
      ctx.lineWidth = px;
      ctx.setLineDash([6 * px, 4 * px]);
      ctx.font = (11 * px) + 'px system-ui, sans-serif';
      ctx.textAlign = 'right';
      ctx.textBaseline = 'bottom';
      lines.forEach((l) => {
        const y = Math.round(u.valToPos(l[0], 'y', true)) + 0.5;
        if (y < b.top || y > b.top + b.height) return;
        ctx.strokeStyle = ctx.fillStyle = l[1];
        ctx.beginPath();
        ctx.moveTo(b.left, y);
        ctx.lineTo(b.left + b.width, y);
        ctx.stroke();
        ctx.fillText(l[0] + ' °C', b.left + b.width - 4 * px, y - 2 * px);
      });
      if (!u.data[1] || !u.data[1].some(isNum)) {
        ctx.fillStyle = '#8b94a3';
        ctx.textAlign = 'center';
        ctx.textBaseline = 'middle';
        ctx.fillText('No temperature data', b.left + b.width / 2, b.top + b.height / 2);
      }
      ctx.restore();
    };
  }

  function makeChart(def, data) {
    const target = $('chart-' + def.id);
    const fmt = (u, v) => (isNum(v) ? v.toFixed(def.dec) + (def.unit ? ' ' + def.unit : '') : '—');
    const opts = {
      width: target.clientWidth || 400,
      height: CHART_H,
      cursor: { sync: { key: 'pi' }, drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: () => [state.window[0], state.window[1]] },
        y: { range: def.range || fromZero },
      },
      axes: [axis(), Object.assign(axis(), { size: 50 })],
      series: [{ value: (u, v) => (v == null ? '—' : fmtTime(v * 1000)) }].concat(def.series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 1.5,
        fill: s.fill ? s.color + '26' : undefined,
        spanGaps: false,
        value: fmt,
      }))),
      hooks: def.thresholds ? { draw: [drawThresholds(def.thresholds)] } : {},
    };
    return new uPlot(opts, data, target);
  }

  function renderCharts() {
    if (typeof uPlot !== 'function') throw new Error('chart library (uPlot) failed to load');
    $('charts').hidden = false;  // must be visible before measuring widths
    $('chart-host').textContent = state.hosts.length > 1 ? '— ' + state.rowsHost : '';
    CHARTS.forEach((def) => {
      const data = columns(state.rows, def);
      const u = state.charts[def.id];
      if (u) u.setData(data);
      else state.charts[def.id] = makeChart(def, data);
    });
    fitCharts();
    document.body.dataset.points = String(state.rows.length);
    if (state.rows.length) document.body.dataset.ready = '1';
  }

  // Match every chart's width to its container (window resize, layout changes).
  function fitCharts() {
    Object.keys(state.charts).forEach((id) => {
      const u = state.charts[id], w = $('chart-' + id).clientWidth;
      if (w > 0 && Math.abs(w - u.width) > 1) u.setSize({ width: w, height: CHART_H });
    });
  }

  /* ---------- wiring ---------- */

  function setRange(sec) {
    if (!isNum(sec) || sec === state.range) return;
    state.range = sec;
    const btns = $('range').querySelectorAll('button');
    for (let i = 0; i < btns.length; i++) {
      btns[i].setAttribute('aria-pressed', String(Number(btns[i].dataset.range) === sec));
    }
    refresh();
  }

  function init() {
    $('range').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-range]');
      if (b) setRange(Number(b.dataset.range));
    });
    $('host-select').addEventListener('change', (e) => selectHost(e.target.value));
    $('hosts').addEventListener('click', (e) => {
      const c = e.target.closest('.card');
      if (c) selectHost(c.dataset.host);
    });
    $('hosts').addEventListener('keydown', (e) => {
      const c = e.target.closest('.card');
      if (c && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); selectHost(c.dataset.host); }
    });
    let raf = 0;
    window.addEventListener('resize', () => {
      cancelAnimationFrame(raf);
      raf = requestAnimationFrame(fitCharts);
    });
    document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
    refresh();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
