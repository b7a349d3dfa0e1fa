/* The expected jobs (`[[jobs.expect]]`, GET /jobs/expected): each one's last run, its
 * result and when it is next due, or since when it is missed / overrunning. Hidden when none
 * is configured. Names are set as text, never as markup. Exposes window.SaExpected. */
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const isNum = (v) => typeof v === 'number' && isFinite(v);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function when(ms) {
    if (!isNum(ms)) return '—';
    return new Date(ms).toLocaleString([], {
      month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
  }

  // [text, css class] of an expectation's state.
  function verdict(s) {
    if (isNum(s.missed_due_ms)) return ['missed (due ' + when(s.missed_due_ms) + ')', 'res-bad'];
    if (s.overrun) return ['overrunning', 'res-bad'];
    if (!s.last_run) return ['not run yet', ''];
    if (!s.last_run.result) return ['running', 'res-run'];
    return [s.last_run.result, s.last_run.result === 'success' ? 'res-ok' : 'res-bad'];
  }

  function render(list) {
    const section = $('expected-section'), body = $('expected');
    if (!section || !body) return;
    if (!Array.isArray(list) || !list.length) { section.hidden = true; return; }
    section.hidden = false;
    body.textContent = '';
    list.forEach((s) => {
      const tr = el('tr');
      const v = verdict(s);
      tr.dataset.job = String(s.name);
      tr.dataset.state = v[1] === 'res-bad' ? 'bad' : 'ok';
      tr.appendChild(el('td', null, String(s.name)));
      tr.appendChild(el('td', null, String(s.host)));
      tr.appendChild(el('td', null, String(s.schedule)));
      tr.appendChild(el('td', 'num', when(s.last_run && s.last_run.start_ms)));
      tr.appendChild(el('td', v[1], v[0]));
      tr.appendChild(el('td', 'num', isNum(s.missed_due_ms) ? '—' : when(s.next_due_ms)));
      body.appendChild(tr);
    });
  }

  window.SaExpected = { render: render };
})();
