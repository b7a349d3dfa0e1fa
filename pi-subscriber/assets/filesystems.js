/* Filesystem bars for the host cards: one bar per mount, used % as `df` shows it
 * (used / (used + avail)), amber from 85 %, red from 95 % (the filesystem_used alert's
 * thresholds). Exposes window.SaFilesystems.bars(filesystems) -> element or null. */
(function () {
  'use strict';

  const MAX_BARS = 16; // a card lists this many mounts, then says how many more there are
  const WARN = 85, CRIT = 95;

  const isNum = (v) => typeof v === 'number' && isFinite(v);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function fmtBytes(b) {
    if (!isNum(b)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : String(b)) + ' ' + units[i];
  }

  // used / (used + avail) * 100, or null when the mount did not answer.
  function usedPercent(fs) {
    if (!fs || !isNum(fs.used_bytes) || !isNum(fs.avail_bytes)) return null;
    const whole = fs.used_bytes + fs.avail_bytes;
    return whole > 0 ? 100 * fs.used_bytes / whole : null;
  }

  function bar(mount, fs) {
    const pct = usedPercent(fs);
    const row = el('div', 'fs' + (pct == null ? ' fs-unknown' : pct >= CRIT ? ' fs-crit' : pct >= WARN ? ' fs-warn' : ''));
    row.dataset.mount = mount;
    row.dataset.usedPercent = pct == null ? '' : pct.toFixed(1);
    row.title = fs
      ? mount + ' — ' + fs.device + ' (' + fs.fstype + '): ' + fmtBytes(fs.used_bytes) + ' used, ' +
        fmtBytes(fs.avail_bytes) + ' free of ' + fmtBytes(fs.size_bytes)
      : mount + ': no answer (statvfs timed out or failed)';
    row.appendChild(el('span', 'fs-name', mount));
    const meter = el('span', 'fs-bar');
    meter.setAttribute('role', 'meter');
    meter.setAttribute('aria-label', mount + ' used');
    meter.setAttribute('aria-valuemin', '0');
    meter.setAttribute('aria-valuemax', '100');
    if (pct != null) {
      meter.setAttribute('aria-valuenow', pct.toFixed(1));
      const fill = el('span', 'fs-fill');
      fill.style.width = Math.min(100, Math.max(0, pct)).toFixed(1) + '%';
      meter.appendChild(fill);
    }
    row.appendChild(meter);
    row.appendChild(el('span', 'fs-pct', pct == null ? 'no answer' : pct.toFixed(1) + ' %'));
    return row;
  }

  function bars(filesystems) {
    if (!filesystems || typeof filesystems !== 'object') return null;
    const mounts = Object.keys(filesystems);
    if (!mounts.length) return null;
    const box = el('div', 'fs-list');
    box.setAttribute('aria-label', 'Filesystems');
    mounts.slice(0, MAX_BARS).forEach((m) => box.appendChild(bar(m, filesystems[m])));
    if (mounts.length > MAX_BARS) box.appendChild(el('div', 'fs-more muted', '+' + (mounts.length - MAX_BARS) + ' more'));
    return box;
  }

  window.SaFilesystems = { bars: bars, usedPercent: usedPercent };
})();
