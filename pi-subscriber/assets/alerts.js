/* Firing alerts from `GET /alerts`: a banner in the header (worst severity's colour, the
 * first MAX_SHOWN alerts, worst first) and a badge per host card (how many fire there, in
 * the colour of the worst). Both are absent while nothing fires. Names from the server are
 * set as text only. Exposes window.SaAlerts.update(answer), .badge(host) and .count(host). */
(function () {
  'use strict';

  const MAX_SHOWN = 8;
  const RANK = { info: 1, warning: 2, critical: 3 };
  const sev = (s) => (RANK[s] ? s : 'info');

  const isNum = (v) => typeof v === 'number' && isFinite(v);
  let byHost = new Map(); // host -> { count, worst }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  const num = (v) => (isNum(v) ? String(Math.round(v * 100) / 100) : null);

  function since(ms) {
    if (!isNum(ms)) return '';
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) return Math.floor(s / 3600) + ' h';
    return Math.floor(s / 86400) + ' d';
  }

  // "host: rule [label] 87.5 (threshold 85), for 3 min"
  function describe(a) {
    let t = String(a.host) + ': ' + String(a.rule);
    if (a.label) t += ' [' + String(a.label) + ']';
    const v = num(a.value), th = num(a.threshold);
    if (v != null) t += ' ' + v + (th != null ? ' (threshold ' + th + ')' : '');
    const d = since(a.since_ms);
    if (d) t += ', for ' + d;
    return t;
  }

  function renderBanner(list) {
    const box = document.getElementById('alerts');
    box.textContent = '';
    box.dataset.firing = String(list.length);
    if (!list.length) {
      box.hidden = true;
      box.className = 'alerts';
      return;
    }
    const worst = sev(list[0].severity);
    box.className = 'alerts sev-' + worst;
    box.appendChild(el('strong', 'alerts-title', list.length + (list.length > 1 ? ' alerts firing' : ' alert firing')));
    const ul = el('ul');
    list.slice(0, MAX_SHOWN).forEach((a) => {
      const li = el('li', 'sev-' + sev(a.severity));
      li.dataset.rule = String(a.rule);
      li.dataset.host = String(a.host);
      li.appendChild(el('span', 'sev', sev(a.severity)));
      li.appendChild(el('span', 'what', describe(a)));
      ul.appendChild(li);
    });
    if (list.length > MAX_SHOWN) ul.appendChild(el('li', 'muted', '+' + (list.length - MAX_SHOWN) + ' more'));
    box.appendChild(ul);
    box.hidden = false;
  }

  // Takes an answer of /alerts (or null: nothing known, keep what is shown).
  function update(answer) {
    if (!answer || typeof answer !== 'object') return;
    const all = Array.isArray(answer.alerts) ? answer.alerts : [];
    const list = all.filter((a) => a && typeof a === 'object' && a.state === 'firing')
      .sort((a, b) => (RANK[sev(b.severity)] - RANK[sev(a.severity)]) || ((a.since_ms || 0) - (b.since_ms || 0)));
    byHost = new Map();
    list.forEach((a) => {
      const h = byHost.get(String(a.host)) || { count: 0, worst: 'info' };
      h.count += 1;
      if (RANK[sev(a.severity)] > RANK[h.worst]) h.worst = sev(a.severity);
      byHost.set(String(a.host), h);
    });
    renderBanner(list);
  }

  // The badge for a host card, or null when nothing fires there.
  function badge(host) {
    const h = byHost.get(host);
    if (!h) return null;
    const b = el('span', 'alert-badge sev-' + h.worst, '⚠ ' + h.count);
    b.dataset.alerts = String(h.count);
    b.dataset.severity = h.worst;
    b.title = h.count + (h.count > 1 ? ' alerts' : ' alert') + ' firing (worst: ' + h.worst + ')';
    return b;
  }

  // How many alerts fire on a host (the overview sorts by it).
  const count = (host) => (byHost.get(host) || { count: 0 }).count;

  window.SaAlerts = { update: update, badge: badge, count: count };
})();
