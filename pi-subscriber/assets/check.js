/* A layout self-check, on only with #check=1 in the URL (tests and anyone curious): after the
 * page settles it looks for text that overlaps other text or is cut without a way to read it,
 * in the page (bounding boxes of text) and in the charts' canvas axes (tick labels measured
 * as uPlot draws them), and writes what it found to <body data-layout-problems="…">
 * (empty: none) and data-layout-checked="1". */
(function () {
  'use strict';

  const MAX_LISTED = 8;

  function describe(e) {
    const id = e.id ? '#' + e.id : '';
    const cls = typeof e.className === 'string' && e.className ? '.' + e.className.split(' ')[0] : '';
    return e.tagName.toLowerCase() + id + cls + ' "' + String(e.textContent).trim().slice(0, 24) + '"';
  }

  const visible = (r) => r.width > 0.5 && r.height > 0.5;

  // The part of `r` an ancestor that hides its overflow lets through (a cut name's text
  // box runs on past its ellipsis, invisibly), or null when none of it shows.
  function shown(r, e) {
    let box = { left: r.left, right: r.right, top: r.top, bottom: r.bottom };
    for (let a = e; a && a !== document.body; a = a.parentElement) {
      const st = getComputedStyle(a);
      if (st.overflowX === 'visible' && st.overflowY === 'visible') continue;
      const c = a.getBoundingClientRect();
      box = { left: Math.max(box.left, c.left), right: Math.min(box.right, c.right),
              top: Math.max(box.top, c.top), bottom: Math.min(box.bottom, c.bottom) };
    }
    return box.right - box.left > 0.5 && box.bottom - box.top > 0.5 ? box : null;
  }

  // Text nodes' visible boxes, one per element holding text directly.
  function textBoxes() {
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.nodeValue.trim()) continue;
      const parent = n.parentElement;
      if (!parent || parent.closest('[hidden], details:not([open]) > :not(summary), script, style, option, .u-legend')) continue;
      const range = document.createRange();
      range.selectNodeContents(n);
      Array.prototype.filter.call(range.getClientRects(), visible).forEach((r) => {
        const box = shown(r, parent);
        if (box) out.push({ el: parent, r: box });
      });
    }
    return out;
  }

  // An element whose text is cut (scrolls inside it) with no title to read it whole.
  function clipped(boxes) {
    const seen = new Set(), found = [];
    boxes.forEach((b) => {
      const e = b.el;
      if (seen.has(e)) return;
      seen.add(e);
      const cut = e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible';
      if (cut && !e.closest('[title]')) found.push('clipped ' + describe(e));
    });
    return found;
  }

  function overlapping(boxes) {
    const found = [];
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        if (a.el === b.el || a.el.contains(b.el) || b.el.contains(a.el)) continue;
        const w = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
        const h = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
        if (w > 1 && h > 1) found.push('overlap ' + describe(a.el) + ' / ' + describe(b.el));
      }
    }
    return found;
  }

  // The charts' axes: x tick labels (centred on their tick) must not overlap each other or
  // leave the canvas; y tick labels must fit the axis' width.
  function axes() {
    const found = [];
    const list = window.SaCharts && window.SaCharts.plots ? window.SaCharts.plots() : [];
    list.forEach((p) => {
      const u = p.u, ctx = u.ctx, px = window.devicePixelRatio || 1;
      ctx.save();
      ctx.font = (11 * px) + 'px system-ui, sans-serif';
      const width = (s) => Math.max.apply(null, String(s).split('\n').map((l) => ctx.measureText(l).width / px));
      const x = u.axes[0], y = u.axes[1];
      const xs = (x._splits || []).map((v, i) => ({ at: u.valToPos(v, 'x') + u.bbox.left / px, w: width((x._values || [])[i] || '') }));
      xs.forEach((t, i) => {
        if (t.at - t.w / 2 < -0.5 || t.at + t.w / 2 > u.width + 0.5) found.push(p.id + ': x label "' + x._values[i] + '" leaves the chart');
        const n = xs[i + 1];
        if (n && t.at + t.w / 2 > n.at - n.w / 2) found.push(p.id + ': x labels "' + x._values[i] + '" and "' + x._values[i + 1] + '" overlap');
      });
      const room = (y._size || 50) - 10; // the axis' width less its tick and gap
      (y._values || []).forEach((v) => { if (width(v) > room) found.push(p.id + ': y label "' + v + '" clipped'); });
      ctx.restore();
    });
    return found;
  }

  function check() {
    const boxes = textBoxes();
    const found = clipped(boxes).concat(overlapping(boxes), axes());
    document.body.dataset.layoutProblems = found.slice(0, MAX_LISTED).join(' | ');
    document.body.dataset.layoutProblemCount = String(found.length);
    document.body.dataset.layoutChecked = '1';
  }

  if (!/(^#|&)check=1(&|$)/.test(location.hash)) return;
  // After each render (the page sets data-ready) and a moment for the charts to draw.
  let timer = 0;
  new MutationObserver(() => { clearTimeout(timer); timer = setTimeout(check, 300); })
    .observe(document.body, { attributes: true, attributeFilter: ['data-ready', 'data-overview'] });
})();
