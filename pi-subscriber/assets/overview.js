/* The overview: one row per host with its state, alerts and failed units, a sparkline of the
 * last hour for each chart the registry marks `spark` (CPU, memory, disk busy, network), and
 * the process using the most CPU now. Sortable by any column; a click (or Enter) on a row
 * opens that host's charts. Every name is text, never markup. Exposes window.SaOverview. */
(function () {
  'use strict';

  const RANGE_S = 3600; // the sparklines' window
  const W = 100, H = 24; // the sparkline's viewBox
  const COLORS = ['#4fa3ff', '#ff6b81'];
  const isNum = (v) => typeof v === 'number' && isFinite(v);
  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  let COLS = [];       // [{id, title, unit, dec, percent, bytes, metrics}]
  const wins = {};     // host -> its sparkline window (SaSeries.load)
  let xfrom = 0, xto = 1; // the time axis every row shares (ms)
  const sort = { key: 'host', desc: false };

  // The sparkline columns, from /series/metrics: lines marked `spark` grouped by chart id.
  function define(metrics) {
    const byId = {};
    COLS = [];
    (Array.isArray(metrics) ? metrics : []).forEach((m) => {
      const c = m && m.chart;
      if (!c || !c.spark || typeof c.id !== 'string') return;
      let col = byId[c.id];
      if (!col) {
        col = byId[c.id] = {
          id: c.id, title: String(c.title), unit: String(c.unit || ''), dec: c.decimals | 0,
          percent: c.range === 'percent', bytes: m.unit === 'bytes/s', metrics: [],
        };
        COLS.push(col);
      }
      col.metrics.push(String(m.metric));
    });
  }

  const wants = () => COLS.reduce((a, c) => a.concat(c.metrics.map((m) => ({ metric: m, band: false }))), []);

  // Re-reads the windows that are due (hosts with samples only); `getJSON` resolves to null on error.
  async function load(getJSON, hosts, now) {
    const names = hosts.filter((h) => h.last_seq != null).map((h) => h.host);
    Object.keys(wins).forEach((h) => { if (names.indexOf(h) < 0) delete wins[h]; });
    await Promise.all(names.map(async (h) => {
      if (window.SaSeries.stale(wins[h], h, RANGE_S, now)) {
        wins[h] = await window.SaSeries.load(getJSON, h, RANGE_S, wants(), now);
      }
    }));
  }

  // The host-wide points of a metric in a host's window.
  function pointsOf(host, metric) {
    const w = wins[host];
    return (w && window.SaSeries.points(w, metric, 'avg', '')) || [];
  }

  // The newest value of a column (its lines summed: network = received + sent), or null.
  function now(host, col) {
    let sum = null;
    col.metrics.forEach((m) => {
      const p = pointsOf(host, m);
      for (let i = p.length - 1; i >= 0; i--) {
        if (Array.isArray(p[i]) && isNum(p[i][1])) { sum = (sum || 0) + p[i][1]; break; }
      }
    });
    return sum;
  }

  function fmt(col, v) {
    if (!isNum(v)) return '—';
    if (col.bytes) {
      const u = v >= 1e9 ? ['GB/s', 1e-9, 2] : v >= 1e6 ? ['MB/s', 1e-6, 2] : v >= 1e3 ? ['kB/s', 1e-3, 1] : ['B/s', 1, 0];
      return (v * u[1]).toFixed(u[2]) + ' ' + u[0];
    }
    return v.toFixed(col.dec) + (col.unit ? ' ' + col.unit : '');
  }

  // An inline SVG: one polyline per line and unbroken run (a gap breaks it), y from 0 to
  // 100 % or to the window's largest value.
  function spark(host, col) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('aria-hidden', 'true');
    const w = wins[host];
    if (!w) return svg;
    const lines = col.metrics.map((m) => pointsOf(host, m));
    let max = col.percent ? 100 : 0;
    lines.forEach((p) => p.forEach((x) => { if (isNum(x[1]) && x[1] > max) max = x[1]; }));
    if (!(max > 0)) max = 1;
    const x = (t) => ((t - xfrom) / Math.max(1, xto - xfrom)) * W;
    const y = (v) => H - 1 - (Math.min(v, max) / max) * (H - 2);
    let drawn = 0;
    lines.forEach((p, i) => {
      let run = [];
      const flush = () => {
        if (run.length > 1) {
          const pl = document.createElementNS(ns, 'polyline');
          pl.setAttribute('points', run.join(' '));
          pl.setAttribute('stroke', COLORS[i % COLORS.length]);
          svg.appendChild(pl);
        }
        run = [];
      };
      p.forEach((q) => {
        if (Array.isArray(q) && isNum(q[0]) && isNum(q[1])) {
          run.push(x(q[0]).toFixed(2) + ',' + y(q[1]).toFixed(2));
          drawn++;
        } else flush();
      });
      flush();
    });
    svg.dataset.points = String(drawn);
    return svg;
  }

  /* The rows' shared time axis: the hour, but starting at the oldest point of any row when
   * that is well inside it (a fresh install's first minutes fill the sparkline). */
  function axis() {
    let first = Infinity, to = 0, from = 0;
    Object.keys(wins).forEach((h) => {
      const w = wins[h];
      if (!w) return;
      to = Math.max(to, w.to);
      from = from ? Math.min(from, w.from) : w.from;
      COLS.forEach((c) => c.metrics.forEach((m) => pointsOf(h, m).forEach((p) => {
        if (Array.isArray(p) && isNum(p[1]) && p[0] < first) first = p[0];
      })));
    });
    xto = to || 1;
    xfrom = isNum(first) && first > from + 0.05 * (xto - from) ? first : from;
  }

  // Sort keys: the host's name, its trouble (stale, then firing alerts, then failed units),
  // or a column's newest value.
  function keyOf(h, m, key) {
    if (key === 'host') return h.host;
    if (key === 'status') {
      const alerts = window.SaAlerts.count(h.host);
      const units = m && Array.isArray(m.failed_units) ? m.failed_units.length : 0;
      return (h.stale ? 1e6 : 0) + alerts * 1e3 + units;
    }
    const col = COLS.filter((c) => c.id === key)[0];
    return col ? now(h.host, col) : null;
  }

  function sorted(hosts, metrics) {
    const dir = sort.desc ? -1 : 1;
    return hosts.slice().sort((a, b) => {
      const x = keyOf(a, metrics[a.host], sort.key), y = keyOf(b, metrics[b.host], sort.key);
      if (x === y) return a.host < b.host ? -1 : a.host > b.host ? 1 : 0;
      if (x == null) return 1; // no value: last, whichever the direction
      if (y == null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }

  function header(onSort) {
    const tr = el('tr');
    const cols = [['host', 'Host'], ['status', 'Status']]
      .concat(COLS.map((c) => [c.id, c.title]))
      .concat([[null, 'Top CPU now']]);
    cols.forEach((c) => {
      const th = el('th');
      th.scope = 'col';
      if (c[0]) {
        const b = el('button', 'sort', c[1]);
        b.type = 'button';
        b.dataset.sort = c[0];
        b.title = 'Sort by ' + c[1].toLowerCase();
        th.setAttribute('aria-sort', sort.key === c[0] ? (sort.desc ? 'descending' : 'ascending') : 'none');
        b.addEventListener('click', () => {
          sort.desc = sort.key === c[0] ? !sort.desc : c[0] !== 'host';
          sort.key = c[0];
          onSort();
        });
        th.appendChild(b);
      } else th.textContent = c[1];
      tr.appendChild(th);
    });
    return tr;
  }

  function row(h, m, selected, topCpu) {
    const tr = el('tr', (h.stale ? 'is-stale' : '') + (selected ? ' selected' : ''));
    tr.dataset.host = h.host;
    tr.tabIndex = 0;
    tr.title = 'Show charts for ' + h.host;
    const name = el('td', 'ov-host');
    const n = el('span', 'ov-name', h.host);
    n.title = h.host;
    name.appendChild(n);
    tr.appendChild(name);
    const td = el('td', 'ov-status');
    const st = el('div', 'ov-badges');
    td.appendChild(st);
    st.appendChild(el('span', 'badge ' + (h.stale ? 'stale' : 'ok'), h.stale ? 'STALE' : 'OK'));
    const alerts = window.SaAlerts.badge(h.host);
    if (alerts) st.appendChild(alerts);
    const units = m && Array.isArray(m.failed_units) ? m.failed_units : [];
    if (units.length) {
      const u = el('span', 'units-badge', units.length + ' failed');
      u.title = units.map((x) => String(x && x.name)).join('\n');
      st.appendChild(u);
    }
    tr.appendChild(td);
    COLS.forEach((c) => {
      const td = el('td', 'ov-spark');
      td.dataset.col = c.id;
      const v = now(h.host, c);
      td.appendChild(spark(h.host, c));
      const val = el('span', 'ov-val', fmt(c, v));
      td.dataset.value = isNum(v) ? String(v) : '';
      td.appendChild(val);
      td.title = c.title + ' over the last hour, now ' + fmt(c, v);
      tr.appendChild(td);
    });
    const top = el('td', 'ov-top');
    const t = el('span', 'ov-name', topCpu(m));
    t.title = t.textContent;
    top.appendChild(t);
    tr.appendChild(top);
    return tr;
  }

  /* Draws the table: `hosts` from /hosts, `metrics` host -> newest /metrics, `selected` the
   * charted host, `pick(host)` opens a host's charts, `topCpu(m)` the "now" text. */
  function render(hosts, metrics, selected, pick, topCpu) {
    const box = $('overview');
    axis();
    const table = el('table', 'overview');
    const draw = () => render(hosts, metrics, selected, pick, topCpu);
    const head = el('thead');
    head.appendChild(header(draw));
    table.appendChild(head);
    const body = el('tbody');
    sorted(hosts, metrics).forEach((h) => body.appendChild(row(h, metrics[h.host] || {}, h.host === selected, topCpu)));
    body.addEventListener('click', (e) => {
      const tr = e.target.closest('tr[data-host]');
      if (tr) pick(tr.dataset.host);
    });
    body.addEventListener('keydown', (e) => {
      const tr = e.target.closest('tr[data-host]');
      if (tr && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); pick(tr.dataset.host); }
    });
    table.appendChild(body);
    box.textContent = '';
    box.appendChild(table);
    box.dataset.sort = sort.key + (sort.desc ? '-desc' : '');
    box.dataset.order = sorted(hosts, metrics).map((h) => h.host).join(',');
  }

  window.SaOverview = {
    define: define,
    defined: () => COLS.length > 0,
    load: load,
    render: render,
    sortBy: (key, desc) => { sort.key = key; sort.desc = !!desc; },
    sortKey: () => sort,
  };
})();
