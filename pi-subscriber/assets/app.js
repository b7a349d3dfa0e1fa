/* Server Analytics dashboard for pi-subscriber.
 * Polls the JSON API (relative URLs, so it works under a reverse-proxy prefix)
 * every 5 s and updates host cards, uPlot charts and the jobs table in place.
 * Plain ES2017, no build step; uPlot is loaded from assets/uPlot.iife.min.js. */
(function () {
  'use strict';

  const REFRESH_MS = 5000;       // poll period (charts re-read their window less often)
  const FETCH_TIMEOUT_MS = 8000;
  // `health` answers 503 while stale (and before the first snapshot); browsers
  // log every 5xx response as a console error, so by default the badge is
  // derived from `hosts` with the same rule (see healthOf). Set true to poll it.
  const USE_HEALTH = false;

  const $ = (id) => document.getElementById(id);

  const state = {
    range: 3600,      // seconds shown in the charts
    host: null,       // host whose history is charted
    picked: false,    // the host was chosen by the user (kept in the URL's hash)
    hosts: [],        // last good answer of `hosts`, sorted by name
    metrics: {},      // host -> latest `metrics` snapshot
    win: null,        // the charted window (SaSeries.load)
    at: null,         // a moment the charts point at (#at=, epoch ms): its processes show
    errors: [],
    jobsShown: false, // a jobs answer has been rendered at least once
    busy: false,
    again: false,
    timer: 0,
  };

  /* ---------- small helpers ---------- */

  const MB = 1e-6; // bytes/s -> MB/s
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

  // The process that used the most CPU since the previous sample: "ffmpeg 190 % (root)".
  function topCpu(m) {
    const top = m && m.processes && Array.isArray(m.processes.top_cpu) ? m.processes.top_cpu[0] : null;
    if (!top || !isNum(top.cpu_percent)) return '—';
    return String(top.name) + ' ' + top.cpu_percent.toFixed(0) + ' %' + (top.user ? ' (' + String(top.user) + ')' : '');
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
        soft(getJSON('alerts')),
        soft(getJSON('jobs/expected')),
      ]);
      if (window.SaExpected && Array.isArray(res[4])) window.SaExpected.render(res[4]);
      window.SaAlerts.update(res[3]);
      if (Array.isArray(res[0])) state.hosts = res[0];  // keep the last good list on failure
      renderBadge(USE_HEALTH ? res[2] : healthOf(Array.isArray(res[0]) ? res[0] : null));
      pickHost();
      // Only ask for snapshots of hosts that have one (avoids expected 503s).
      await Promise.all(state.hosts.filter((h) => h.last_seq != null).map((h) => loadMetrics(h.host)));
      renderHosts();
      await renderOverview();
      if (Array.isArray(res[1])) renderJobs(res[1]);
      else if (!state.jobsShown) emptyJobs('Job events unavailable');
      if (state.host) {
        try {
          await loadCharts();
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
    state.picked = true;
    saveHash();
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
    const alerts = window.SaAlerts.badge(h.host);
    if (alerts) head.appendChild(alerts);
    // Failed systemd units: a badge listing them on hover.
    const units = m && Array.isArray(m.failed_units) ? m.failed_units : [];
    if (units.length) {
      const u = el('span', 'units-badge', units.length + ' failed');
      u.title = units.map((x) => String(x && x.name)).join('\n');
      u.dataset.units = String(units.length);
      head.appendChild(u);
    }
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
      ['Top CPU', topCpu(m)],
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

  /* ---------- rendering: the overview (one row per host) ---------- */

  // The registry (/series/metrics), read once: the charts and the overview are built from it.
  async function defineFromRegistry() {
    if (window.SaCharts.defined()) return true;
    const metrics = await soft(getJSON('series/metrics'));
    if (!metrics) return false;
    window.SaCharts.define(metrics);
    window.SaOverview.define(metrics);
    return true;
  }

  async function renderOverview() {
    if (!(await defineFromRegistry())) return;
    await window.SaOverview.load((p) => soft(getJSON(p)), state.hosts, Date.now());
    $('overview-section').hidden = !state.hosts.length;
    window.SaOverview.render(state.hosts, state.metrics, state.host, (h) => {
      selectHost(h);
      $('charts').scrollIntoView({ block: 'start' });
    }, topCpu);
    document.body.dataset.overview = String(Date.now());
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

  /* ---------- charts ---------- */

  // Re-reads the window when the host or range changed or it is due, then draws it.
  async function loadCharts() {
    if (!(await defineFromRegistry())) return;
    const now = Date.now();
    if (window.SaSeries.stale(state.win, state.host, state.range, now)) {
      state.win = await window.SaSeries.load((p) => soft(getJSON(p)), state.host, state.range,
                                             window.SaCharts.wants(), now);
    }
    $('chart-host').textContent = state.hosts.length > 1 ? '— ' + state.win.host : '';
    window.SaCharts.render(state.win);
    if (isNum(state.at)) window.SaCharts.pointAt(state.at);
  }

  /* ---------- wiring ---------- */

  // The range, an explicitly picked host, the open per-device section and a moment to point
  // at live in the URL's hash (#range=604800&host=tower&devices=1&at=1796579548048), so a
  // reload or a bookmark keeps them.
  function saveHash() {
    const p = new URLSearchParams();
    p.set('range', String(state.range));
    if (state.picked) p.set('host', state.host);
    if ($('devices').open) p.set('devices', '1');
    if (isNum(state.at)) p.set('at', String(state.at));
    history.replaceState(null, '', '#' + p.toString());
  }

  function readHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ''));
    const r = Number(p.get('range'));
    if (rangeButtons().some((b) => Number(b.dataset.range) === r)) state.range = r;
    if (p.get('host')) { state.host = p.get('host'); state.picked = true; }
    $('devices').open = p.get('devices') === '1';
    const at = Number(p.get('at'));
    state.at = p.get('at') && isNum(at) && at > 0 ? at : null;
    pressRange();
  }

  const rangeButtons = () => Array.prototype.slice.call($('range').querySelectorAll('button[data-range]'));

  function pressRange() {
    rangeButtons().forEach((b) => b.setAttribute('aria-pressed', String(Number(b.dataset.range) === state.range)));
  }

  function setRange(sec) {
    if (!isNum(sec) || sec === state.range) return;
    state.range = sec;
    pressRange();
    saveHash();
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
      raf = requestAnimationFrame(window.SaCharts.fit);
    });
    $('devices').addEventListener('toggle', () => {
      saveHash();
      if (state.win && state.win.host === state.host) window.SaCharts.renderDevices(state.win);
    });
    readHash();
    document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
    refresh();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
