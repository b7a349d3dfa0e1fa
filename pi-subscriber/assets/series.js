/* Reading history for the dashboard from `GET /series` (one metric per query, every label of
 * it at once: the total has labels {} and each device/interface/mount its own).
 * The step keeps a chart at about MAX_POINTS points; on a rolled-up range (step above the
 * raw interval, or a tier other than "raw") min and max are fetched beside the average so the
 * charts can draw a band. Exposes window.SaSeries. */
(function () {
  'use strict';

  const MAX_POINTS = 600;
  // Steps a query may use, in seconds: the range / MAX_POINTS, rounded up to one of these.
  const STEPS = [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const RAW_STEP = 15;          // the publisher's default interval: no band at or below it
  const MIN_REFETCH_MS = 15000;  // a window is re-read at most this often…
  const MAX_REFETCH_MS = 300000; // …and at least this often (else once per step)

  const isNum = (v) => typeof v === 'number' && isFinite(v);

  function stepFor(rangeSec) {
    const want = Math.ceil(rangeSec / MAX_POINTS);
    for (let i = 0; i < STEPS.length; i++) if (STEPS[i] >= want) return STEPS[i];
    return Math.ceil(want / 86400) * 86400;
  }

  // One answer of /series -> Map(label value ('' = total) -> [[ts_ms, v|null]…]).
  function byLabel(answer) {
    const out = new Map();
    const list = answer && Array.isArray(answer.series) ? answer.series : [];
    list.forEach((s) => {
      if (!s || !Array.isArray(s.points)) return;
      const labels = s.labels && typeof s.labels === 'object' ? s.labels : {};
      const keys = Object.keys(labels);
      out.set(keys.length ? String(labels[keys[0]]) : '', s.points);
    });
    return out;
  }

  /* A window of history: `wants` is [{metric, band}] (band: min/max wanted on rolled-up
   * ranges). `getJSON(path)` resolves to the answer or null (errors are the caller's). */
  async function load(getJSON, host, rangeSec, wants, nowMs) {
    const step = stepFor(rangeSec);
    const from = nowMs - rangeSec * 1000, to = nowMs;
    const base = 'series?host=' + encodeURIComponent(host) + '&from=' + from + '&to=' + to +
      '&step=' + step + '&metric=';
    const data = {};
    const metrics = [];
    // Regions whose samples are lost for good (the same for every metric of the host).
    let lost = [];
    wants.forEach((w) => { if (metrics.indexOf(w.metric) < 0) metrics.push(w.metric); });
    const read = (metric, agg) => getJSON(base + encodeURIComponent(metric) + '&agg=' + agg)
      .then((a) => {
        (data[metric] || (data[metric] = {}))[agg] = byLabel(a);
        if (a && Array.isArray(a.lost) && a.lost.length) {
          lost = a.lost.filter((l) => l && isNum(l.from_ms) && isNum(l.to_ms) && isNum(l.samples));
        }
        return a && typeof a.tier === 'string' ? a.tier : null;
      });
    const banded = metrics.filter((m) => wants.some((w) => w.metric === m && w.band));
    let band = step > RAW_STEP;
    const jobs = metrics.map((m) => read(m, 'avg'));
    if (band) banded.forEach((m) => { jobs.push(read(m, 'min')); jobs.push(read(m, 'max')); });
    const tiers = (await Promise.all(jobs)).filter((t) => t);
    const tier = tiers.length ? tiers[0] : 'raw';
    if (!band && tier !== 'raw') {
      // A short raw retention: the range was answered from buckets after all.
      band = true;
      await Promise.all(banded.map((m) => Promise.all([read(m, 'min'), read(m, 'max')])));
    }
    return { host: host, range: rangeSec, step: step, tier: tier, band: band,
             from: from, to: to, at: nowMs, data: data, lost: lost };
  }

  // Whether a window read at `win.at` should be read again.
  function stale(win, host, rangeSec, nowMs) {
    if (!win || win.host !== host || win.range !== rangeSec) return true;
    const every = Math.min(MAX_REFETCH_MS, Math.max(MIN_REFETCH_MS, win.step * 1000));
    return nowMs - win.at >= every;
  }

  // The points of one metric/agg/label of a window, or null.
  function points(win, metric, agg, label) {
    const m = win.data[metric];
    return m && m[agg] ? m[agg].get(label) || null : null;
  }

  // The label values (not the total) a window holds for any of `metrics`, sorted.
  function labels(win, metrics) {
    const seen = new Set();
    metrics.forEach((metric) => {
      const m = win.data[metric];
      if (m && m.avg) m.avg.forEach((_, l) => { if (l !== '') seen.add(l); });
    });
    return Array.from(seen).sort();
  }

  /* uPlot columns for `cols` (each a points array or null, same step): x in epoch seconds,
   * the union of the times (the window's step grid when no column has any), every value
   * scaled, null where a column has none. */
  function columns(win, cols, scale) {
    const times = new Set();
    cols.forEach((c) => { if (c) c.forEach((p) => { if (Array.isArray(p) && isNum(p[0])) times.add(p[0]); }); });
    if (!times.size) {
      const w = win.step * 1000;
      for (let t = Math.floor(win.from / w) * w; t <= win.to; t += w) times.add(t);
    }
    const ts = Array.from(times).sort((a, b) => a - b);
    const at = new Map(ts.map((t, i) => [t, i]));
    const out = [ts.map((t) => t / 1000)];
    cols.forEach((c) => {
      const col = new Array(ts.length).fill(null);
      if (c) c.forEach((p) => { if (Array.isArray(p) && isNum(p[1]) && at.has(p[0])) col[at.get(p[0])] = p[1] * scale; });
      out.push(col);
    });
    return out;
  }

  window.SaSeries = { stepFor: stepFor, load: load, stale: stale, points: points, labels: labels,
                      columns: columns };
})();
