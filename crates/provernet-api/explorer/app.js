/*
 * provernet block explorer: a dependency-free single-page app over the node's /v1 API.
 *
 * Everything the chain returns (program names, labels, error texts, file names) is chosen by
 * attackers. So every element is built with h()/svg() below, text always goes through
 * text nodes, and an href is only ever a "#/..." route built from a validated id. Nothing here
 * uses innerHTML, eval or inline styles (the page runs under a strict Content-Security-Policy).
 *
 * Layout of this file: helpers (DOM, formatting, API) → charts → views (one per route) →
 * router → search → live updates → start-up.
 */
'use strict';

(() => {
  // ------------------------------------------------------------------ constants, validation

  const HEX64 = /^[0-9a-f]{64}$/;
  const DIGITS = /^\d{1,15}$/; // heights: digits, small enough to be an exact JS number
  // Program names are letters, digits, `_`, `-` and `.` on chain; accept any printable ASCII
  // here (the lookup is URL-encoded) so a future rule change does not hide programs.
  const PROGRAM_NAME = /^[A-Za-z0-9_][\x21-\x7e]{0,127}$/;
  const JOB_STATES = ['Pending', 'Assigned', 'Running', 'Proven', 'Race', 'Verified', 'Failed',
    'Cancelled', 'Expired'];
  const JOB_STATE_FILTERS = new Set([...JOB_STATES, 'Failed(program)', 'Failed(no proof)',
    'Failed(time limit)', 'Failed(unverifiable)']);
  const MICRO = 1000000;
  const BLOCKS_PAGE = 25;
  const JOBS_PAGE = 50;
  const REQUEST_TIMEOUT_MS = 15000;

  const isHex = (s) => typeof s === 'string' && HEX64.test(s);
  const isNum = (n) => typeof n === 'number' && Number.isFinite(n);
  const isHeight = (n) => Number.isInteger(n) && n >= 0;

  // ------------------------------------------------------------------ DOM helpers

  /** Appends children: nodes as they are, everything else as a text node; null/false skipped. */
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c == null || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** Sets attributes on an element. `testid` → data-testid, `on*` → listeners, hrefs checked. */
  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'style' || k === 'innerHTML') throw new Error(`h(): ${k} is not allowed`);
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.setAttribute('class', v);
      else if (k === 'testid') el.setAttribute('data-testid', v);
      else if (k === 'href') {
        // Only routes of this app (built from validated ids) and the API's own document.
        if (!/^#\//.test(v) && v !== '/openapi.json') throw new Error('h(): unsafe href');
        el.setAttribute('href', v);
      } else el.setAttribute(k, v === true ? '' : String(v));
    }
  }

  /** h('a', {href: '#/...'}, 'text', childNode, ...) */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    return append(el, children);
  }

  const SVGNS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    return append(el, children);
  }

  const $ = (id) => document.getElementById(id);

  function card(title, ...children) {
    return h('section', { class: 'card' }, title ? h('h2', null, title) : null, children);
  }

  /** A definition list from [label, value] pairs (falsy pairs are skipped). */
  function kv(pairs) {
    return h('dl', { class: 'kv' },
      pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
  }

  /**
   * A table. `cols` are labels, or {label, num} for right-aligned numeric columns; `rows` are
   * arrays of cells (nodes or text).
   */
  function table(cols, rows, empty = 'Nothing here yet.', testid) {
    if (!rows.length) return h('p', { class: 'empty', testid }, empty);
    const spec = cols.map((c) => (typeof c === 'string' ? { label: c } : c));
    return h('div', { class: 'table-wrap' },
      h('table', { testid },
        h('thead', null, h('tr', null, spec.map((c) => h('th', { class: c.num ? 'num' : null }, c.label)))),
        h('tbody', null, rows.map((r) =>
          h('tr', null, r.map((cell, i) => h('td', { class: spec[i] && spec[i].num ? 'num' : null }, cell)))))));
  }

  function note(...children) {
    return h('p', { class: 'note' }, children);
  }

  function errorBox(e) {
    const status = e && e.status;
    const title = e && e.local ? 'Invalid address' : status === 404 ? 'Not found'
      : status === 0 ? 'Cannot reach the node API'
        : status ? 'The API returned an error' : 'Something went wrong';
    return h('div', { class: 'error-box', role: 'alert', testid: 'error' },
      h('h2', null, title),
      h('p', null, (e && e.message) || String(e)),
      e && e.code && !e.local ? h('p', { class: 'muted' }, 'code ', h('code', null, e.code),
        status ? ` · HTTP ${status}` : '') : null);
  }

  // ------------------------------------------------------------------ formatting

  const fmtInt = (n) => (isNum(n) ? n.toLocaleString('en-US') : '—');
  const shortId = (id) => (typeof id === 'string' && id.length > 14 ? `${id.slice(0, 8)}…${id.slice(-4)}` : String(id));

  /** Micro-credits to a credits string, exact for integers below 2^53. */
  function credits(micro) {
    const neg = micro < 0;
    const m = Math.abs(Math.round(micro));
    const whole = Math.floor(m / MICRO);
    const frac = String(m % MICRO).padStart(6, '0').replace(/0+$/, '');
    return `${neg ? '-' : ''}${whole.toLocaleString('en-US')}${frac ? `.${frac}` : ''}`;
  }

  /** An amount: "1,500,000 µc (1.5 credits)"; "—" when the field is missing. */
  function amount(micro, testid) {
    if (!isNum(micro)) return h('span', { class: 'muted', testid }, '—');
    return h('span', { class: 'amount', testid, 'data-value': micro },
      `${fmtInt(micro)} µc`, h('span', { class: 'sub' }, ` (${credits(micro)} credits)`));
  }

  /** Compact amount for tables: credits, with µc in the title. */
  function amountShort(micro) {
    if (!isNum(micro)) return h('span', { class: 'muted' }, '—');
    return h('span', { class: 'amount', title: `${fmtInt(micro)} µc`, 'data-value': micro }, `${credits(micro)} cr`);
  }

  function bytes(n) {
    if (!isNum(n)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = n;
    let u = 0;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
    return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
  }

  function ms(n) {
    if (!isNum(n)) return '—';
    if (n < 1000) return `${n} ms`;
    if (n < 120000) return `${(n / 1000).toFixed(2)} s`;
    return `${(n / 60000).toFixed(1)} min`;
  }

  function seconds(n) {
    if (!isNum(n)) return '—';
    return n < 120 ? `${n} s` : `${n} s (${(n / 60).toFixed(1)} min)`;
  }

  function utc(tms) {
    if (!isNum(tms) || tms <= 0) return '—';
    return new Date(tms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  function ago(tms) {
    if (!isNum(tms) || tms <= 0) return '—';
    const s = Math.max(0, Math.round((Date.now() - tms) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  const timeCell = (tms) => h('span', { title: utc(tms) }, ago(tms));
  const pct = (part, whole) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '—');

  // A program's code: an executable blob, or an OCI image by its digest and layers.
  function code(c) {
    if (!c) return '—';
    if (c.kind === 'executable' && c.blob) {
      return h('span', null, 'executable ', h('span', { class: 'id', title: String(c.blob.hash) }, shortId(c.blob.hash)), ` · ${bytes(c.blob.size)}`);
    }
    if (c.kind === 'image') {
      const layers = c.layers || [];
      const packed = layers.reduce((n, l) => n + Number(l.blob?.size || 0), 0);
      const unpacked = layers.reduce((n, l) => n + Number(l.unpacked_bytes || 0), 0);
      return h('span', null, 'image ', h('span', { class: 'id mono', title: String(c.digest) }, String(c.digest).slice(0, 19) + '…'),
        ` · ${layers.length} layer${layers.length === 1 ? '' : 's'}, ${bytes(packed)} (${bytes(unpacked)} unpacked)`);
    }
    return '—';
  }

  function resources(r) {
    if (!r) return '—';
    const gpus = r.gpus ?? 0;
    return `${r.cores ?? '?'} ${r.cores === '1' ? 'core' : 'cores'} · ${r.memory ?? bytes(r.memory_bytes)} · ${gpus} GPU${gpus === 1 ? '' : 's'}`;
  }

  /** Badge colour from a status string; the class comes from this fixed list, never from data. */
  function tone(s) {
    const v = String(s);
    if (/^(Verified|Active|applied|valid|active|yes|verified)/.test(v)) return 'ok';
    if (/^(Failed|Invalid|Rejected|Refuted|Missed|ProgramError|TimeLimit|failed|invalid|Slashed|Ejected)/.test(v)) return 'bad';
    if (/^(Cancelled|Expired|Superseded|Declined|Unverifiable|CannotVerify|cannot_verify|Exiting|unknown|no$|pending vote|cancelled|skipped|waiting|done$)/.test(v)) return 'muted';
    return 'progress';
  }
  function badge(s, testid) {
    const text = s == null || s === '' ? '—' : String(s);
    return h('span', { class: `badge badge-${tone(text)}`, testid, title: text }, text);
  }

  // A prover's status may carry details ("Probing { probe: … }", "Exiting { until: … }"):
  // badges show its first word, the page shows the rest beside it.
  const statusWord = (s) => String(s ?? '').split(/[\s{(]/)[0] || String(s ?? '—');
  const proverBadge = (s, testid) => {
    const b = badge(statusWord(s), testid);
    b.setAttribute('title', String(s ?? ''));
    return b;
  };
  const statusDetail = (s) => {
    const rest = String(s ?? '').slice(statusWord(s).length).trim();
    return rest ? h('span', { class: 'muted detail' }, ` ${rest}`) : null;
  };

  // Links: only from validated ids, so an href never carries data from the chain verbatim.
  function idLink(kind, id, label) {
    if (!isHex(id)) return h('span', { class: 'id muted' }, id == null ? '—' : String(id));
    return h('a', { class: 'id', href: `#/${kind}/${id}`, title: id }, label || shortId(id));
  }
  function blockLink(height) {
    if (!isHeight(height)) return h('span', { class: 'muted' }, '—');
    return h('a', { class: 'height', href: `#/block/${height}` }, `#${height}`);
  }
  function fullId(id, testid) {
    return h('span', { class: 'id full', testid, title: String(id) }, String(id));
  }

  // ------------------------------------------------------------------ API access

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /**
   * GET a JSON document from the API. Errors become ApiError with the API's {code, message}
   * (status 0 for network failures). With `optional`, a 404 not_found answers null.
   */
  async function api(path, { optional = false } = {}) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS);
    let res;
    let text;
    try {
      res = await fetch(path, { headers: { Accept: 'application/json' }, signal: ctl.signal });
      text = await res.text();
    } catch (e) {
      throw new ApiError(0, ctl.signal.aborted ? 'timeout' : 'network',
        ctl.signal.aborted ? `the API did not answer ${path} within ${REQUEST_TIMEOUT_MS / 1000} s`
          : `the request for ${path} failed: ${e.message}`);
    } finally {
      clearTimeout(timer);
    }
    let body = null;
    try { body = JSON.parse(text); } catch (_) { /* not JSON: handled below */ }
    if (!res.ok) {
      if (optional && res.status === 404 && (!body || body.code !== 'no_route')) return null;
      const code = body && typeof body.code === 'string' ? body.code : `http_${res.status}`;
      const msg = body && typeof body.message === 'string' ? body.message
        : `${path} answered HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
      throw new ApiError(res.status, code, msg);
    }
    if (body === null || typeof body !== 'object') throw new ApiError(res.status, 'bad_json', `${path} did not answer JSON`);
    return body;
  }

  /** An error in the page's own address (a malformed id or filter), found before any request. */
  function invalid(code, message) {
    const e = new ApiError(400, code, message);
    e.local = true;
    return e;
  }

  /** Resolves to {value} or {error}, so one failing section does not blank the page. */
  const settle = (p) => p.then((value) => ({ value }), (error) => ({ error }));

  // Finalized blocks never change, so they are cached by height.
  const blockCache = new Map();
  function cacheBlock(b) {
    if (b && isHeight(b.height)) {
      blockCache.set(b.height, b);
      if (blockCache.size > 600) blockCache.delete(blockCache.keys().next().value);
    }
    return b;
  }
  async function getBlock(height) {
    if (blockCache.has(height)) return blockCache.get(height);
    return cacheBlock(await api(`/v1/blocks/${height}`));
  }

  let blocksEndpoint = null; // null: untried; true/false: whether GET /v1/blocks exists

  /**
   * A page of blocks, newest first: {items, next} where `next` is the `before` of the next page.
   * Uses GET /v1/blocks?limit&before when the node has it, else walks down from the tip.
   */
  async function listBlocks(limit, before) {
    if (blocksEndpoint !== false) {
      const q = new URLSearchParams({ limit: String(limit) });
      if (before != null) q.set('before', String(before));
      try {
        const page = await api(`/v1/blocks?${q}`);
        if (Array.isArray(page.items)) {
          blocksEndpoint = true;
          page.items.forEach(cacheBlock);
          const next = page.next_cursor == null ? null : Number(page.next_cursor);
          return { items: page.items, next: isHeight(next) ? next : null };
        }
        blocksEndpoint = false;
      } catch (e) {
        if (e.status === 404 || e.status === 405 || (e.status === 400 && e.code === 'bad_height')) blocksEndpoint = false;
        else throw e;
      }
    }
    let top;
    if (before != null) top = before - 1;
    else top = cacheBlock(await api('/v1/blocks/latest')).height;
    const heights = [];
    for (let x = top; x >= 0 && heights.length < limit; x -= 1) heights.push(x);
    const items = (await Promise.all(heights.map((x) => getBlock(x).catch(() => null)))).filter(Boolean);
    const last = heights[heights.length - 1];
    return { items, next: last > 0 ? last : null };
  }

  /** Every prover (pages of 100, at most 10 pages). */
  async function allProvers() {
    const out = [];
    let cursor = null;
    for (let i = 0; i < 10; i += 1) {
      const q = new URLSearchParams({ limit: '100' });
      if (cursor) q.set('cursor', cursor);
      const page = await api(`/v1/provers?${q}`);
      out.push(...(page.items || []));
      if (!isHex(page.next_cursor)) break;
      cursor = page.next_cursor;
    }
    return out;
  }

  // Program names by id, for showing jobs' programs by name.
  const programNames = new Map();
  async function loadProgramNames(ids) {
    const missing = [...new Set(ids)].filter((id) => isHex(id) && !programNames.has(id)).slice(0, 40);
    await Promise.all(missing.map((id) => api(`/v1/programs/${id}`, { optional: true })
      .then((p) => programNames.set(id, p && typeof p.name === 'string' ? p.name : null), () => {})));
  }
  function programLink(id) {
    const name = programNames.get(id);
    if (isHex(id) && name) return h('a', { class: 'prog', href: `#/program/${id}`, title: id }, name);
    return idLink('program', id);
  }

  /** The transactions of a block: the API's `transactions`, else its hashes with unknown kind. */
  function blockTxs(b) {
    if (Array.isArray(b.transactions)) return b.transactions;
    return (b.txs || []).map((hash) => ({ hash, kind: null, status: null }));
  }

  // ------------------------------------------------------------------ charts (inline SVG)

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  /**
   * Vertical bar chart. bars: [{label, segments: [{value, cls}], title, href}]; segments stack.
   */
  function barChart(bars, { testid, unit = '', integer = false, caption } = {}) {
    const W = 640;
    const H = 220;
    const m = { l: 44, r: 8, t: 12, b: 28 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const total = (b) => b.segments.reduce((s, x) => s + (x.value || 0), 0);
    const max = niceMax(Math.max(0, ...bars.map(total)));
    const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': caption || 'bar chart', preserveAspectRatio: 'xMidYMid meet' });
    for (let i = 0; i <= 4; i += 1) {
      const v = (max * i) / 4;
      const y = m.t + ph - (ph * i) / 4;
      root.appendChild(svg('line', { class: 'grid', x1: m.l, x2: W - m.r, y1: y, y2: y }));
      const label = integer && !Number.isInteger(v) ? '' : `${+v.toFixed(2)}${unit}`;
      root.appendChild(svg('text', { class: 'axis', x: m.l - 6, y: y + 4, 'text-anchor': 'end' }, label));
    }
    const n = Math.max(bars.length, 1);
    const slot = pw / n;
    const bw = Math.max(1, Math.min(36, slot * 0.72));
    const every = Math.max(1, Math.ceil(n / 10));
    bars.forEach((b, i) => {
      const x = m.l + slot * i + (slot - bw) / 2;
      const g = svg('g', { class: 'bar' }, svg('title', null, b.title || `${b.label}: ${total(b)}`));
      // A transparent full-height hit area makes tiny bars hoverable and clickable.
      g.appendChild(svg('rect', { class: 'hit', x: m.l + slot * i, y: m.t, width: slot, height: ph }));
      let y = m.t + ph;
      for (const s of b.segments) {
        const hgt = (ph * (s.value || 0)) / max;
        if (hgt > 0) {
          y -= hgt;
          g.appendChild(svg('rect', { class: `seg ${s.cls || 'seg-a'}`, x, y, width: bw, height: hgt, rx: 2 }));
        }
      }
      root.appendChild(b.href ? svg('a', { href: b.href }, g) : g);
      if (i % every === 0 || i === n - 1) {
        root.appendChild(svg('text', { class: 'axis', x: x + bw / 2, y: H - 10, 'text-anchor': 'middle' }, b.label));
      }
    });
    root.appendChild(svg('line', { class: 'baseline', x1: m.l, x2: W - m.r, y1: m.t + ph, y2: m.t + ph }));
    return h('figure', { class: 'chart-box', testid }, root, caption ? h('figcaption', null, caption) : null);
  }

  /** Horizontal bars with a label and a value text per row: [{label, value, text, href, title}]. */
  function hbarChart(rows, { testid, caption } = {}) {
    const W = 560;
    const rowH = 30;
    const labelW = 130;
    const textW = 170;
    const H = rows.length * rowH + 8;
    const max = Math.max(0, ...rows.map((r) => r.value)) || 1;
    const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': caption || 'bar chart' });
    rows.forEach((r, i) => {
      const y = 4 + i * rowH;
      const w = ((W - labelW - textW - 12) * r.value) / max;
      const g = svg('g', { class: 'bar' }, svg('title', null, r.title || r.label),
        svg('text', { class: 'label mono', x: labelW - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end' }, r.label),
        svg('rect', { class: 'track', x: labelW, y: y + 5, width: W - labelW - textW - 12, height: rowH - 10, rx: 3 }),
        svg('rect', { class: `seg ${r.cls || 'seg-a'}`, x: labelW, y: y + 5, width: Math.max(w, r.value > 0 ? 2 : 0), height: rowH - 10, rx: 3 }),
        svg('text', { class: 'value', x: W - textW, y: y + rowH / 2 + 4 }, r.text));
      root.appendChild(r.href ? svg('a', { href: r.href }, g) : g);
    });
    return h('figure', { class: 'chart-box', testid }, root, caption ? h('figcaption', null, caption) : null);
  }

  /** A thin stacked bar of parts of a whole (the supply breakdown). */
  function stackBar(parts, whole) {
    const W = 600;
    const root = svg('svg', { class: 'stack', viewBox: `0 0 ${W} 14`, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'supply breakdown' });
    let x = 0;
    parts.forEach((p, i) => {
      const w = whole > 0 && isNum(p.value) ? (W * p.value) / whole : 0;
      if (w > 0) root.appendChild(svg('rect', { class: `seg seg-${i % 6}`, x, y: 0, width: w, height: 14 }, svg('title', null, `${p.label}: ${pct(p.value, whole)}`)));
      x += w;
    });
    return root;
  }

  function chartJobsPerBlock(blocks, sampleJobs) {
    const exact = blocks.some((b) => Array.isArray(b.transactions));
    const bars = [...blocks].filter((b) => isHeight(b.height) && b.height > 0).reverse().map((b) => {
      let ok = 0;
      let failed = 0;
      if (Array.isArray(b.transactions)) {
        for (const t of b.transactions) if (t.kind === 'submit_job') { if (t.status === 'failed') failed += 1; else ok += 1; }
      } else {
        ok = sampleJobs.filter((j) => j.submitted_at === b.height).length;
      }
      return {
        label: String(b.height),
        href: `#/block/${b.height}`,
        title: `block #${b.height}: ${ok} job submission${ok === 1 ? '' : 's'}${failed ? `, ${failed} failed` : ''}`,
        segments: [{ value: ok, cls: 'seg-a' }, { value: failed, cls: 'seg-bad' }],
      };
    });
    if (!bars.length) return h('p', { class: 'empty', testid: 'chart-jobs-per-block' }, 'No blocks yet.');
    const chart = barChart(bars, {
      testid: 'chart-jobs-per-block',
      integer: true,
      caption: exact ? `submit_job transactions in each of the last ${bars.length} blocks (failed ones in red)`
        : `jobs submitted in each of the last ${bars.length} blocks, counted from the jobs loaded (this node does not list block transactions)`,
    });
    if (bars.every((b) => b.segments.every((x) => !x.value))) {
      const last = sampleJobs.reduce((m, j) => Math.max(m, isHeight(j.submitted_at) ? j.submitted_at : -1), -1);
      chart.insertBefore(h('p', { class: 'chart-stats' }, `No job was submitted in these ${bars.length} blocks`,
        last >= 0 ? [' (the latest submission seen: block ', blockLink(last), ').'] : '.'), chart.firstChild);
    }
    return chart;
  }

  /** The wall time of the attempt that decided a job (the winner, else any verified attempt). */
  function decidingWall(j) {
    const atts = j.attempts || [];
    const a = (isNum(j.winner) && atts[j.winner]) || atts.find((x) => x.state === 'Verified') || null;
    return a && a.usage && isNum(a.usage.wall_ms) && a.usage.wall_ms > 0 ? a.usage.wall_ms : null;
  }

  function chartLatency(jobs, blockTimeMs) {
    const done = jobs.filter((j) => isHeight(j.finished_at) && isHeight(j.submitted_at))
      .sort((a, b) => a.finished_at - b.finished_at || (a.id < b.id ? -1 : 1)).slice(-40);
    if (!done.length) return h('p', { class: 'empty', testid: 'chart-latency' }, 'No finished jobs yet.');
    const bars = done.map((j) => {
      const blocks = j.finished_at - j.submitted_at;
      const wall = decidingWall(j);
      const t = tone(j.status);
      return {
        label: shortId(j.id).slice(0, 4),
        href: isHex(j.id) ? `#/job/${j.id}` : null,
        title: `job ${shortId(j.id)} (${j.status}): ${blocks} block${blocks === 1 ? '' : 's'} from submission to ${j.status}` +
          `${wall != null ? `; prover wall time ${ms(wall)}` : ''}`,
        segments: [{ value: blocks, cls: t === 'ok' ? 'seg-ok' : t === 'bad' ? 'seg-bad' : 'seg-muted' }],
      };
    });
    const lat = done.map((j) => j.finished_at - j.submitted_at).sort((a, b) => a - b);
    const walls = done.map(decidingWall).filter((w) => w != null).sort((a, b) => a - b);
    const median = (xs) => xs[Math.floor((xs.length - 1) / 2)];
    const approx = isNum(blockTimeMs) ? ` ≈ ${ms(median(lat) * blockTimeMs)}` : '';
    const chart = barChart(bars, {
      testid: 'chart-latency',
      integer: true,
      caption: `blocks from submission to a final state, last ${done.length} finished jobs (green verified, red failed, grey other)`,
    });
    chart.appendChild(h('p', { class: 'chart-stats' },
      `median ${median(lat)} blocks${approx}`,
      walls.length ? ` · median prover wall time ${ms(median(walls))} (max ${ms(walls[walls.length - 1])})` : ''));
    return chart;
  }

  function chartRewards(provers) {
    const reported = provers.filter((p) => isNum(p.earned_micro_credits));
    if (!reported.length) {
      return h('p', { class: 'empty', testid: 'chart-rewards' },
        provers.length ? 'This node does not report prover earnings yet.' : 'No provers registered.');
    }
    const total = reported.reduce((s, p) => s + p.earned_micro_credits, 0);
    if (total <= 0) return h('p', { class: 'empty', testid: 'chart-rewards' }, 'No rewards paid yet.');
    const rows = reported.sort((a, b) => b.earned_micro_credits - a.earned_micro_credits).slice(0, 15).map((p) => ({
      label: shortId(p.id),
      value: p.earned_micro_credits,
      text: `${pct(p.earned_micro_credits, total)} · ${credits(p.earned_micro_credits)} cr`,
      href: isHex(p.id) ? `#/prover/${p.id}` : null,
      title: `prover ${p.id}: ${fmtInt(p.earned_micro_credits)} µc, ${pct(p.earned_micro_credits, total)} of ${fmtInt(total)} µc earned`,
    }));
    return hbarChart(rows, { testid: 'chart-rewards', caption: `share of the ${credits(total)} credits earned by provers` });
  }

  // ------------------------------------------------------------------ shared view pieces

  function blocksTable(blocks, testid) {
    return table(['Height', 'Hash', { label: 'Txs', num: true }, { label: 'Failed', num: true }, 'Time'],
      blocks.map((b) => {
        const txs = blockTxs(b);
        const failed = Array.isArray(b.transactions) ? b.transactions.filter((t) => t.status === 'failed').length : null;
        return [blockLink(b.height), b.genesis ? h('span', { class: 'muted' }, 'genesis') : h('span', { class: 'id', title: String(b.hash) }, shortId(b.hash)),
          fmtInt(txs.length), failed == null ? '—' : fmtInt(failed), timeCell(b.time_ms)];
      }), 'No blocks yet.', testid);
  }

  function jobsTable(jobs, { requester = true, testid } = {}) {
    return table(['Job', 'Status', 'Program', ...(requester ? ['Requester'] : []), 'Mechanism',
      { label: 'Attempts', num: true }, 'Submitted', 'Finished', { label: 'Fee / prover', num: true }],
    jobs.map((j) => [idLink('job', j.id), badge(j.status), programLink(j.program),
      ...(requester ? [idLink('account', j.requester)] : []), j.mechanism ?? '—',
      fmtInt((j.attempts || []).length), blockLink(j.submitted_at), blockLink(j.finished_at),
      amountShort(j.fee_per_prover_micro_credits)]),
    'No jobs.', testid);
  }

  const newestFirst = (a, b) => (b.submitted_at || 0) - (a.submitted_at || 0) || (a.id < b.id ? -1 : 1);

  function meter(used, cap, text) {
    const ratio = cap > 0 ? Math.min(1, Math.max(0, used / cap)) : 0;
    const fill = h('span', { class: 'meter-fill' });
    fill.style.width = `${(ratio * 100).toFixed(1)}%`; // CSSOM is allowed under the CSP
    return h('span', { class: 'meter-row' }, h('span', { class: 'meter' }, fill), h('span', null, text));
  }

  /** Jobs whose attempts include `prover` (the API filter may be missing: check every item). */
  async function jobsOfProver(id) {
    const page = await api(`/v1/jobs?prover=${id}&order=newest&limit=100`);
    const items = page.items || [];
    const mine = items.filter((j) => (j.attempts || []).some((a) => a.prover === id)
      || (j.attempts || []).some((a) => (a.committee || []).includes(id))).sort(newestFirst);
    return { jobs: mine, filtered: mine.length === items.length, more: page.next_cursor != null };
  }

  // ------------------------------------------------------------------ views

  async function viewHome() {
    const [status, supply, blocks, jobs, provers] = await Promise.all([
      settle(api('/v1/status')), settle(api('/v1/supply')), settle(listBlocks(20)),
      settle(api('/v1/jobs?order=newest&limit=100')), settle(allProvers()),
    ]);
    if (status.error && blocks.error && jobs.error) throw status.error;
    const st = status.value || {};
    if (status.value) noteStatus(st);
    const jobItems = jobs.value ? jobs.value.items || [] : [];
    const recent = [...jobItems].sort(newestFirst).slice(0, 10);
    await loadProgramNames(recent.map((j) => j.program));

    const chain = status.error ? errorBox(status.error) : kv([
      ['Chain id', h('span', { class: 'mono' }, String(st.chain_id ?? '—'))],
      ['Height', h('span', { testid: 'home-height' }, blockLink(st.height))],
      ['Last block', st.time_ms ? h('span', null, ago(st.time_ms), h('span', { class: 'sub' }, ` ${utc(st.time_ms)}`)) : '—'],
      ['Block time', ms(st.block_time_ms)],
      ['Transaction fee', amount(st.tx_fee_micro_credits)],
      ['Mempool', st.mempool ? `${fmtInt(st.mempool.txs)} txs · ${bytes(st.mempool.bytes)}` : '—'],
      ['Mechanisms', h('span', { class: 'tags' }, ((st.mechanisms && st.mechanisms.enabled) || []).map((m) => h('span', { class: 'tag' }, m)))],
    ]);

    let supplyNode;
    if (supply.error) supplyNode = errorBox(supply.error);
    else {
      const s = supply.value;
      const total = s.supply_micro_credits;
      const parts = [['Balances', s.balances_micro_credits], ['Stakes', s.stakes_micro_credits], ['Escrows', s.escrows_micro_credits],
        ['Treasury', s.treasury_micro_credits], ['Burned', s.burned_micro_credits]].map(([label, value]) => ({ label, value }));
      supplyNode = h('div', null,
        kv([['Total supply', amount(total)], ['Accounts', fmtInt(s.accounts)]]),
        stackBar(parts, total),
        table(['Part', { label: 'Amount', num: true }, { label: 'Share', num: true }],
          parts.map((p, i) => [h('span', null, h('span', { class: `swatch seg-${i}` }), p.label), amountShort(p.value), pct(p.value, total)])));
    }

    const pv = provers.value || [];
    const active = pv.filter((p) => p.active).length;
    const capCores = pv.reduce((s, p) => s + ((p.capacity && p.capacity.millicores) || 0), 0);
    const usedCores = pv.reduce((s, p) => s + ((p.used && p.used.millicores) || 0), 0);
    const topProvers = [...pv].sort((a, b) => (b.earned_micro_credits || 0) - (a.earned_micro_credits || 0)
      || (b.completed || 0) - (a.completed || 0)).slice(0, 8);
    const proversNode = provers.error ? errorBox(provers.error) : h('div', null,
      kv([['Provers', `${fmtInt(pv.length)} registered · ${fmtInt(active)} active`],
        ['Cores in use', meter(usedCores, capCores, `${(usedCores / 1000).toFixed(1)} of ${(capCores / 1000).toFixed(1)} cores`)],
        ['Total stake', amount(pv.reduce((s, p) => s + (p.stake_micro_credits || 0), 0))]]),
      table(['Prover', 'Status', { label: 'Completed', num: true }, { label: 'Faults', num: true }, { label: 'Earned', num: true }],
        topProvers.map((p) => [idLink('prover', p.id), proverBadge(p.status), fmtInt(p.completed), fmtInt(p.faults), amountShort(p.earned_micro_credits)]),
        'No provers registered.'),
      h('p', { class: 'more' }, h('a', { href: '#/provers' }, 'All provers →')));

    const blockItems = blocks.value ? blocks.value.items : [];
    const node = h('div', { class: 'home' },
      h('div', { class: 'grid-2' }, card('Chain', chain), card('Supply', supplyNode)),
      h('div', { class: 'grid-2' },
        card('Jobs per block', blocks.error ? errorBox(blocks.error) : chartJobsPerBlock(blockItems, jobItems)),
        card('Proving latency', jobs.error ? errorBox(jobs.error) : chartLatency(jobItems, st.block_time_ms))),
      h('div', { class: 'grid-2' },
        h('div', { class: 'col' },
          card('Latest blocks', blocks.error ? errorBox(blocks.error) : blocksTable(blockItems, 'latest-blocks'),
            h('p', { class: 'more' }, h('a', { href: '#/blocks' }, 'All blocks →')))),
        h('div', { class: 'col' },
          card('Recent jobs', jobs.error ? errorBox(jobs.error)
            : table(['Job', 'Status', 'Program', 'Submitted'], recent.map((j) => [idLink('job', j.id), badge(j.status), programLink(j.program), blockLink(j.submitted_at)]), 'No jobs yet.', 'recent-jobs'),
          h('p', { class: 'more' }, h('a', { href: '#/jobs' }, 'All jobs →'))),
          card('Provers', proversNode),
          card('Rewards share by prover', provers.error ? errorBox(provers.error) : chartRewards(pv)))));
    return { title: 'Overview', node, live: true };
  }

  async function viewBlocks(ctx) {
    const before = ctx.query.get('before');
    if (before != null && !DIGITS.test(before)) throw invalid('bad_height', `\`${before}\` is not a block height`);
    const page = await listBlocks(BLOCKS_PAGE, before == null ? null : Number(before));
    const nav = h('p', { class: 'pager' },
      before != null ? h('a', { href: '#/blocks' }, '← Newest') : null,
      page.next != null ? h('a', { href: `#/blocks?before=${page.next}` }, 'Older →') : null);
    return {
      title: before == null ? 'Blocks' : `Blocks before #${before}`,
      node: h('div', null, h('h1', null, 'Blocks'), card(null, blocksTable(page.items, 'blocks-table'), nav)),
      live: before == null,
    };
  }

  /** Status and error of transactions, from the block (new API) or from /v1/txs/<hash>. */
  async function resolveTxs(b) {
    const txs = blockTxs(b);
    if (Array.isArray(b.transactions)) return txs;
    const out = [];
    // Ten at a time, for the first 200 (the rest keep an unknown status).
    for (let i = 0; i < Math.min(txs.length, 200); i += 10) {
      const chunk = txs.slice(i, Math.min(i + 10, 200));
      out.push(...await Promise.all(chunk.map((t) => (isHex(t.hash) ? api(`/v1/txs/${t.hash}`, { optional: true }) : Promise.resolve(null))
        .then((r) => ({ ...t, status: r ? r.status : 'unknown', error: r ? r.error : null }), () => ({ ...t, status: 'unknown' })))));
    }
    return out.concat(txs.slice(200));
  }

  function txError(err) {
    if (err == null) return h('span', { class: 'muted' }, '—');
    if (typeof err === 'string') return h('span', { class: 'err-text' }, err);
    return h('span', { class: 'err-text' }, err.code ? h('code', null, String(err.code)) : null, err.code && err.message ? ' ' : '', err.message != null ? String(err.message) : '');
  }

  async function viewBlock(ctx) {
    const height = Number(ctx.params[0]);
    const b = await getBlock(height);
    const txs = await resolveTxs(b);
    const senders = txs.some((t) => t.sender);
    const node = h('div', null,
      h('h1', null, 'Block ', h('span', { testid: 'block-height' }, String(b.height))),
      h('p', { class: 'pager' }, height > 0 ? h('a', { href: `#/block/${height - 1}` }, '← Previous') : null,
        state.height == null || height < state.height ? h('a', { href: `#/block/${height + 1}` }, 'Next →') : null),
      card('Header', kv([
        ['Height', String(b.height)],
        ['Hash', fullId(b.hash ?? '—', 'block-hash')],
        ['Time', b.time_ms ? `${utc(b.time_ms)} (${ago(b.time_ms)})` : '—'],
        ['State root', fullId(b.state_root ?? '—')],
        b.randomness ? ['Randomness', fullId(b.randomness)] : null,
        ['Transactions', fmtInt(txs.length)],
        b.genesis ? ['Genesis', 'yes'] : null,
      ])),
      card('Transactions', table(['Hash', ...(senders ? ['Sender', { label: 'Nonce', num: true }] : []), 'Kind', 'Status', 'Error'],
        txs.map((t) => [idLink('tx', t.hash), ...(senders ? [idLink('account', t.sender), fmtInt(t.nonce)] : []),
          t.kind ? h('span', { class: 'tag' }, String(t.kind)) : h('span', { class: 'muted' }, '—'),
          badge(t.status || 'unknown'), txError(t.error)]), 'No transactions in this block.', 'block-txs')));
    return { title: `Block ${b.height}`, node, live: false };
  }

  async function viewJobs(ctx) {
    const stateF = ctx.query.get('state');
    const cursor = ctx.query.get('cursor');
    if (stateF != null && !JOB_STATE_FILTERS.has(stateF)) throw invalid('bad_state', `\`${stateF}\` is not a job state; use one of ${JOB_STATES.join(', ')}`);
    if (cursor != null && !isHex(cursor) && !/^archive-\d{1,20}$/.test(cursor)) throw invalid('bad_id', 'the page cursor is not a 64-character hex id or archive-<place>');
    const q = new URLSearchParams({ limit: String(JOBS_PAGE), order: 'newest' });
    if (stateF) q.set('state', stateF);
    if (cursor) q.set('cursor', cursor);
    const page = await api(`/v1/jobs?${q}`);
    const items = page.items || [];
    await loadProgramNames(items.map((j) => j.program));
    const select = h('select', { id: 'job-state', testid: 'job-state-filter', 'aria-label': 'Filter by state',
      onchange: (e) => { const v = e.target.value; go(v ? `#/jobs?state=${encodeURIComponent(v)}` : '#/jobs'); } },
    h('option', { value: '' }, 'All states'),
    JOB_STATES.map((s) => h('option', { value: s, selected: s === stateF }, s)));
    const base = stateF ? `#/jobs?state=${encodeURIComponent(stateF)}` : '#/jobs';
    const node = h('div', null, h('h1', null, 'Jobs'),
      card(null, h('div', { class: 'toolbar' }, h('label', { for: 'job-state' }, 'State '), select,
        h('span', { class: 'muted' }, ' newest first')),
      jobsTable(items, { testid: 'jobs-table' }),
      h('p', { class: 'pager' }, cursor ? h('a', { href: base }, '← First page') : null,
        isHex(page.next_cursor) ? h('a', { href: `${base}${stateF ? '&' : '?'}cursor=${page.next_cursor}` }, 'Next page →') : null)));
    return { title: stateF ? `${stateF} jobs` : 'Jobs', node, live: !cursor };
  }

  function fileTable(files, empty) {
    return table(['Name', 'Hash', { label: 'Size', num: true }], (files || []).map((f) => [h('span', { class: 'fname' }, String(f.name)),
      h('span', { class: 'id', title: String(f.hash) }, shortId(f.hash)), h('span', { title: `${fmtInt(f.size)} B` }, bytes(f.size))]), empty);
  }

  // Committee members are provers, or validators when the chain verifies natively: only the
  // ids known to be provers link to a prover page.
  const proverIds = new Map();
  async function loadProverFlags(ids) {
    const missing = [...new Set(ids)].filter((id) => isHex(id) && !proverIds.has(id)).slice(0, 40);
    await Promise.all(missing.map((id) => api(`/v1/provers/${id}`, { optional: true })
      .then((p) => proverIds.set(id, p != null), () => {})));
  }
  function memberLink(id) {
    if (proverIds.get(id) === true) return idLink('prover', id);
    return h('span', { class: 'id', title: `${id} (not a registered prover: a validator)` }, shortId(id));
  }

  function attemptNode(a, i, job) {
    const committee = a.committee || [];
    const votes = a.votes || [];
    const usage = a.usage || {};
    const won = job.winner === i;
    return h('div', { class: 'attempt', testid: 'attempt' },
      h('div', { class: 'attempt-head' }, h('strong', null, `Attempt #${i}`),
        badge(a.state, 'attempt-state'), a.race ? h('span', { class: 'tag' }, 'race') : null,
        won ? h('span', { class: 'tag tag-ok' }, 'winner') : null,
        h('span', { class: 'muted' }, 'prover'), idLink('prover', a.prover, a.prover)),
      h('dl', { class: 'kv kv-2' }, [
        ['Assigned at', blockLink(a.assigned_at)],
        ['Deadline', blockLink(a.deadline)],
        ['Price', amount(a.price_micro_credits)],
        ['Collateral', amount(a.collateral_micro_credits)],
        ['Failure', a.failure ? h('span', { class: 'err-text' }, String(a.failure)) : h('span', { class: 'muted' }, 'none')],
        ['Exit code', a.exit_code != null ? String(a.exit_code) : '—'],
        ['Committed at', blockLink(a.committed_at)],
        ['Reported at', blockLink(a.reported_at)],
        ['Usage', `wall ${ms(usage.wall_ms)} · cpu ${ms(usage.cpu_ms)}`],
        ['Peak memory', bytes(usage.peak_memory_bytes)],
        a.verify_round != null ? ['Verify round', String(a.verify_round)] : null,
      ].filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
      h('div', { class: 'attempt-parts' },
        h('div', null, h('h3', null, 'Committee'),
          table(['Member', 'Vote'], committee.map((m, k) => [memberLink(m), badge(votes[k] == null ? 'pending vote' : votes[k])]), 'No committee drawn.')),
        h('div', null, h('h3', null, 'Proof files'), fileTable(a.proof, 'No proof posted.'))));
  }

  function jobNode(j) {
    const latency = isHeight(j.finished_at) && isHeight(j.submitted_at) ? j.finished_at - j.submitted_at : null;
    const atts = j.attempts || [];
    return h('div', null,
      h('h1', null, 'Job ', fullId(j.id, 'job-id')),
      h('div', { class: 'status-line' }, badge(j.status, 'job-status'), j.final ? h('span', { class: 'muted' }, 'final') : h('span', { class: 'live-tag' }, 'live')),
      h('div', { class: 'grid-2' },
        card('Job', kv([
          ['Status', h('span', null, String(j.status ?? '—'))],
          ['Requester', idLink('account', j.requester, j.requester)],
          ['Program', programLink(j.program)],
          ['Mechanism', j.mechanism ?? '—'],
          ['Redundancy', fmtInt(j.redundancy)],
          ['Resources', resources(j.resources)],
          ['Time limit', seconds(j.time_limit_s)],
          ['Submitted at', blockLink(j.submitted_at)],
          ['Finished at', isHeight(j.finished_at) ? h('span', null, blockLink(j.finished_at), ` (${latency} blocks)`) : '—'],
          ['Winner', isNum(j.winner) ? `attempt #${j.winner}` : '—'],
          j.workflow ? ['Workflow', h('span', null, idLink('workflow', j.workflow.workflow), ` node #${fmtInt(j.workflow.node)}`)] : null,
        ])),
        card('Money', kv([
          ['Fee per prover', amount(j.fee_per_prover_micro_credits)],
          ['Max fee', amount(j.max_fee_micro_credits)],
          ['Escrow', amount(j.escrow_micro_credits)],
          ['Bounty', amount(j.bounty_micro_credits)],
          ['Fallback refund', amount(j.fallback_refund_micro_credits)],
          j.race_price_micro_credits ? ['Race price', amount(j.race_price_micro_credits)] : null,
          j.race_until != null ? ['Race until', blockLink(j.race_until)] : null,
          j.auction_round_opened_at != null ? ['Auction round opened', blockLink(j.auction_round_opened_at)] : null,
          j.sealed_bids ? ['Bids', `${fmtInt(j.sealed_bids)} sealed · ${fmtInt(j.revealed_bids)} revealed`] : null,
        ]))),
      card('Inputs', fileTable(j.inputs, 'No inputs.')),
      card(`Attempts (${atts.length})`, atts.length ? atts.map((a, i) => attemptNode(a, i, j)) : h('p', { class: 'empty' }, 'No attempt yet.')));
  }

  async function viewJob(ctx) {
    const id = ctx.params[0];
    const j = await api(`/v1/jobs/${id}`);
    await Promise.all([loadProgramNames([j.program]), loadProverFlags((j.attempts || []).flatMap((a) => a.committee || []))]);
    const viaStream = !j.final && streaming() && openJobStream(id);
    // While the job's own stream runs it drives the updates; otherwise new blocks do.
    return { title: `Job ${shortId(id)}`, node: jobNode(j), live: !j.final && !viaStream };
  }

  function workflowNode(w) {
    const nodes = w.nodes || [];
    const failed = w.failed_node != null ? String(w.failed_node) : null;
    return h('div', null,
      h('h1', null, 'Workflow ', fullId(w.id, 'workflow-id')),
      h('div', { class: 'status-line' }, badge(w.status, 'workflow-status'), w.final ? h('span', { class: 'muted' }, 'final') : h('span', { class: 'live-tag' }, 'live')),
      card('Workflow', kv([
        ['Requester', idLink('account', w.requester, w.requester)],
        ['Submitted at', blockLink(w.submitted_at)],
        ['Finished at', blockLink(w.finished_at)],
        ['Failed node', failed ? h('span', { class: 'err-text' }, failed) : h('span', { class: 'muted' }, 'none')],
        ['Cancelled', w.cancelled ? 'yes' : 'no'],
        ['Max fee', amount(w.max_fee_micro_credits)],
        ['Escrow held', amount(w.escrow_micro_credits)],
      ])),
      card(`Nodes (${nodes.length})`, table(['Node', 'Status', 'Job', 'Job status', 'Program', 'Reads from'],
        nodes.map((n) => [
          h('strong', null, String(n.name)),
          badge(n.status === 'skipped' && n.skipped_because != null ? `skipped (${n.skipped_because} failed)` : n.status),
          n.status === 'job' || n.status === 'done' ? idLink('job', n.job) : h('span', { class: 'muted' }, 'not yet'),
          n.job_status != null ? badge(n.job_status) : h('span', { class: 'muted' }, '—'),
          programLink(n.program),
          (n.wires || []).length ? (n.wires || []).map((x) => `${x.node}/${x.output} → ${x.input}`).join(', ') : h('span', { class: 'muted' }, 'its own inputs'),
        ]), 'No nodes.', 'workflow-nodes')));
  }

  async function viewWorkflow(ctx) {
    const id = ctx.params[0];
    const w = await api(`/v1/workflows/${id}`);
    await loadProgramNames((w.nodes || []).map((n) => n.program));
    return { title: `Workflow ${shortId(id)}`, node: workflowNode(w), live: !w.final };
  }

  async function viewProvers() {
    const pv = await allProvers();
    const node = h('div', null, h('h1', null, 'Provers'), card(null,
      table(['Prover', 'Status', 'Active', 'Capacity', 'Used', { label: 'Stake', num: true }, { label: 'Earned', num: true },
        { label: 'Completed', num: true }, { label: 'Faults', num: true }, 'Labels'],
      pv.map((p) => [idLink('prover', p.id), proverBadge(p.status), p.active ? 'yes' : 'no', resources(p.capacity), resources(p.used),
        amountShort(p.stake_micro_credits), amountShort(p.earned_micro_credits), fmtInt(p.completed), fmtInt(p.faults),
        h('span', { class: 'tags' }, (p.labels || []).map((l) => h('span', { class: 'tag' }, String(l))))]),
      'No provers registered.', 'provers-table')));
    return { title: 'Provers', node, live: true };
  }

  async function viewProver(ctx) {
    const id = ctx.params[0];
    const [p, jobs] = await Promise.all([api(`/v1/provers/${id}`), settle(jobsOfProver(id))]);
    const cap = p.capacity || {};
    const used = p.used || {};
    if (jobs.value) await loadProgramNames(jobs.value.jobs.map((j) => j.program));
    const node = h('div', null,
      h('h1', null, 'Prover ', fullId(p.id || id, 'prover-id')),
      h('div', { class: 'grid-2' },
        card('Prover', kv([
          ['Status', h('span', null, proverBadge(p.status, 'prover-status'), statusDetail(p.status))],
          ['Active', p.active ? 'yes' : 'no'],
          isHeight(p.exiting_until) ? ['Exiting until', blockLink(p.exiting_until)] : null,
          ['Registered at', blockLink(p.registered_at)],
          ['Completed', fmtInt(p.completed)],
          ['Faults', fmtInt(p.faults)],
          ['Labels', (p.labels || []).length ? h('span', { class: 'tags' }, p.labels.map((l) => h('span', { class: 'tag' }, String(l)))) : '—'],
          ['Account', idLink('account', p.id)],
        ])),
        card('Stake and earnings', kv([
          ['Earned', amount(p.earned_micro_credits, 'prover-earned')],
          ['Slashed', amount(p.slashed_micro_credits)],
          ['Stake', amount(p.stake_micro_credits)],
          ['Bonded', amount(p.bonded_micro_credits)],
        ]))),
      card('Capacity', kv([
        ['Cores', meter(used.millicores || 0, cap.millicores || 0, `${used.cores ?? '0'} of ${cap.cores ?? '?'}`)],
        ['Memory', meter(used.memory_bytes || 0, cap.memory_bytes || 0, `${used.memory ?? '0'} of ${cap.memory ?? '?'}`)],
        ['GPUs', meter(used.gpus || 0, cap.gpus || 0, `${used.gpus ?? 0} of ${cap.gpus ?? 0}`)],
      ])),
      card('Recent jobs', jobs.error ? errorBox(jobs.error) : [
        jobsTable(jobs.value.jobs, { testid: 'prover-jobs' }),
        !jobs.value.filtered ? note('This node does not filter jobs by prover: shown are the matching jobs among the first 100.') : null,
      ]));
    return { title: `Prover ${shortId(id)}`, node, live: true };
  }

  async function viewProgram(ctx) {
    const key = ctx.params[0];
    const p = await api(`/v1/programs/${encodeURIComponent(key)}`);
    if (isHex(p.id) && typeof p.name === 'string') programNames.set(p.id, p.name);
    const v = p.verifier || {};
    const d = p.default_resources;
    const node = h('div', null,
      h('h1', null, 'Program ', h('span', { class: 'prog-name', testid: 'program-name' }, String(p.name ?? key))),
      card('Program', kv([
        ['Id', fullId(p.id ?? '—', 'program-id')],
        ['Name', String(p.name ?? '—')],
        ['Owner', idLink('account', p.owner, p.owner)],
        ['Registered at', blockLink(p.registered_at)],
        ['Prover', code(p.prover)],
        ['Verifier', v.kind === 'builtin' ? `built-in: ${v.name}` : v.kind === 'program' && v.code
          ? h('span', null, code(v.code),
            v.limits ? ` · limits ${(v.limits.millicores / 1000).toFixed(1)} cores, ${bytes(v.limits.memory_bytes)}, ${seconds(v.limits.time_limit_s)}` : '')
          : '—'],
        ['Default resources', resources(d)],
        ['Default time limit', seconds(p.default_time_limit_s)],
        ['Requires', (p.requires || []).length ? h('span', { class: 'tags' }, p.requires.map((l) => h('span', { class: 'tag' }, String(l)))) : '—'],
        ['Inputs', (p.inputs || []).length ? h('span', { class: 'tags' }, p.inputs.map((l) => h('span', { class: 'tag mono' }, String(l)))) : '—'],
      ])));
    return { title: `Program ${String(p.name ?? shortId(key))}`, node, live: false };
  }

  async function viewAccount(ctx) {
    const id = ctx.params[0];
    const [a, jobs, prover] = await Promise.all([
      api(`/v1/accounts/${id}`), settle(api(`/v1/jobs?requester=${id}&order=newest&limit=100`)), settle(api(`/v1/provers/${id}`, { optional: true })),
    ]);
    const items = jobs.value ? (jobs.value.items || []).filter((j) => j.requester === id).sort(newestFirst) : [];
    await loadProgramNames(items.map((j) => j.program));
    const node = h('div', null,
      h('h1', null, 'Account ', fullId(a.id || id, 'account-id')),
      card('Account', kv([
        ['Balance', amount(a.balance_micro_credits, 'account-balance')],
        ['Nonce', fmtInt(a.nonce)],
        ['Open jobs', fmtInt(a.open_jobs)],
        prover.value ? ['Prover', h('a', { href: `#/prover/${id}` }, 'this account is a prover →')] : null,
      ])),
      card('Jobs requested', jobs.error ? errorBox(jobs.error) : [jobsTable(items, { requester: false, testid: 'account-jobs' }),
        jobs.value.next_cursor ? note('Showing the first 100 jobs.') : null]));
    return { title: `Account ${shortId(id)}`, node, live: true };
  }

  async function viewTx(ctx) {
    const hash = ctx.params[0];
    const t = await api(`/v1/txs/${hash}`);
    const b = isHeight(t.height) ? await settle(getBlock(t.height)) : {};
    const full = b.value && Array.isArray(b.value.transactions) ? b.value.transactions.find((x) => x.hash === hash) : null;
    const node = h('div', null,
      h('h1', null, 'Transaction ', fullId(hash, 'tx-hash')),
      card('Transaction', kv([
        ['Status', badge(t.status, 'tx-status')],
        ['Block', blockLink(t.height)],
        full ? ['Kind', h('span', { class: 'tag' }, String(full.kind))] : null,
        full && full.sender ? ['Sender', idLink('account', full.sender, full.sender)] : null,
        full && full.nonce != null ? ['Nonce', fmtInt(full.nonce)] : null,
        ['Error', txError(t.error ?? (full && full.error))],
      ])));
    return { title: `Transaction ${shortId(hash)}`, node, live: t.status === 'pending' };
  }

  // ------------------------------------------------------------------ router

  const ROUTES = [
    [/^\/?$/, viewHome, 'home'],
    [/^\/blocks$/, viewBlocks, 'blocks'],
    [/^\/block\/(\d{1,15})$/, viewBlock, 'blocks'],
    [/^\/jobs$/, viewJobs, 'jobs'],
    [/^\/job\/([0-9a-f]{64})$/, viewJob, 'jobs'],
    [/^\/workflow\/([0-9a-f]{64})$/, viewWorkflow, 'jobs'],
    [/^\/provers$/, viewProvers, 'provers'],
    [/^\/prover\/([0-9a-f]{64})$/, viewProver, 'provers'],
    [/^\/program\/(.{1,200})$/, viewProgram, null],
    [/^\/account\/([0-9a-f]{64})$/, viewAccount, null],
    [/^\/tx\/([0-9a-f]{64})$/, viewTx, null],
    [/^\/search$/, viewSearch, null],
  ];

  const KIND_NAMES = { block: 'a block height', job: 'a job id', workflow: 'a workflow id', prover: 'a prover id', account: 'an account id', tx: 'a transaction hash' };

  function parseHash() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const qi = raw.indexOf('?');
    const path = qi < 0 ? raw : raw.slice(0, qi);
    return { path, query: new URLSearchParams(qi < 0 ? '' : raw.slice(qi + 1)) };
  }

  function go(hash) {
    if (location.hash === hash) render(false);
    else location.hash = hash;
  }

  const state = { gen: 0, live: false, rendering: false, height: null, lastRefresh: 0, refreshTimer: null, jobStream: null };
  const main = $('view');

  async function dispatch(path, query) {
    for (const [re, view, nav] of ROUTES) {
      const m = re.exec(path);
      if (!m) continue;
      let params = m.slice(1);
      if (view === viewProgram) {
        let key;
        try { key = decodeURIComponent(params[0]); } catch (_) { key = null; }
        if (key == null || !(isHex(key) || PROGRAM_NAME.test(key))) throw invalid('bad_id', `\`${String(key ?? params[0]).slice(0, 80)}\` is not a program id or name`);
        params = [key];
      }
      setNav(nav);
      return view({ params, query });
    }
    setNav(null);
    // A known page with a malformed id: say what was expected. Hex ids in upper case are fixed.
    const bad = /^\/(block|job|workflow|prover|account|tx)\/(.*)$/.exec(path);
    if (bad) {
      let arg = bad[2];
      try { arg = decodeURIComponent(arg); } catch (_) { /* keep raw */ }
      if (bad[1] !== 'block' && HEX64.test(arg.toLowerCase())) { location.replace(`#/${bad[1]}/${arg.toLowerCase()}`); return new Promise(() => {}); }
      throw invalid('bad_id', `\`${arg.slice(0, 80)}\` is not ${KIND_NAMES[bad[1]]}${bad[1] === 'block' ? ' (a number)' : ' (64 hex characters)'}`);
    }
    throw new ApiError(404, 'no_page', `there is no page ${path.slice(0, 80)}`);
  }

  function setNav(name) {
    for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === name);
  }

  /**
   * Renders the route in the hash. A navigation shows "Loading…" and flips data-ready to 0; a
   * refresh (live update) keeps the page until the new one is ready and keeps it on errors.
   */
  async function render(refresh) {
    const gen = ++state.gen;
    state.rendering = true;
    if (!refresh) {
      closeJobStream();
      state.live = false;
      document.body.dataset.ready = '0';
      main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
    }
    const { path, query } = parseHash();
    let out;
    try {
      out = await dispatch(path, query);
    } catch (e) {
      if (gen !== state.gen) return;
      state.rendering = false;
      if (refresh) return; // keep what is shown; the next block retries
      out = { title: e.status === 404 ? 'Not found' : 'Error', node: errorBox(e), live: false };
    }
    if (gen !== state.gen) return; // a newer render started meanwhile
    state.rendering = false;
    document.title = `${out.title} — provernet explorer`;
    main.replaceChildren(out.node);
    state.live = out.live;
    document.body.dataset.ready = '1';
    if (!refresh) window.scrollTo(0, 0);
  }

  /**
   * A live refresh at most once a second, and never while the user works in the page. Only
   * views that asked for it (`live`) refresh on new blocks; `force` is for the job stream.
   */
  function scheduleRefresh(force = false) {
    if ((!state.live && !force) || state.refreshTimer) return;
    const wait = Math.max(0, 1000 - (Date.now() - state.lastRefresh));
    state.refreshTimer = setTimeout(() => {
      state.refreshTimer = null;
      const busy = main.contains(document.activeElement) && document.activeElement !== main;
      if (state.rendering || document.body.dataset.ready !== '1' || busy) { scheduleRefresh(force); return; }
      state.lastRefresh = Date.now();
      render(true);
    }, wait);
  }

  // ------------------------------------------------------------------ job event stream

  const brokenJobStreams = new Set();

  /** Opens /v1/jobs/<id>/events; answers whether it is open. */
  function openJobStream(id) {
    if (!('EventSource' in window) || brokenJobStreams.has(id)) return false;
    if (state.jobStream && state.jobStream.id === id) return true;
    closeJobStream();
    const es = new EventSource(`/v1/jobs/${id}/events`);
    state.jobStream = { id, es };
    const onPage = () => parseHash().path === `/job/${id}`;
    // The first message (event `job`) is the whole job view; later ones (event `job_events`,
    // or `job` on older nodes) list the job's events in a block.
    const onMessage = (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch (_) { return; }
      if (!onPage()) { closeJobStream(); return; }
      if (data && data.id === id && Array.isArray(data.attempts)) {
        // The whole job view: show it as it is.
        if (document.body.dataset.ready === '1' && !state.rendering) {
          main.replaceChildren(jobNode(data));
        }
        if (data.final) closeJobStream();
      } else {
        // The job's events in a block: fetch the job again.
        scheduleRefresh(true);
      }
    };
    es.addEventListener('job', onMessage);
    es.addEventListener('job_events', onMessage);
    es.addEventListener('error', () => {
      // The stream ends once the job is final (or the node refused it, e.g. 503 with too many
      // subscribers): stop it from reconnecting, do not reopen it for this job, and let block
      // events drive the refreshes instead.
      closeJobStream();
      brokenJobStreams.add(id);
      if (onPage()) { state.live = true; scheduleRefresh(); }
    });
    return true;
  }

  function closeJobStream() {
    if (state.jobStream) { state.jobStream.es.close(); state.jobStream = null; }
  }

  // ------------------------------------------------------------------ search

  function setSearchError(msg) {
    const el = $('search-error');
    el.textContent = msg || '';
    el.classList.toggle('hidden', !msg);
  }

  /** Resolves a query to a route hash, or throws an Error whose message is for the user. */
  async function resolveSearch(raw) {
    const q = raw.trim();
    if (!q) throw new Error('Type a block height, a 64-character hex id or a program name.');
    const shown = q.length > 80 ? `${q.slice(0, 80)}…` : q;
    const notFound = `\`${shown}\` is not a block height, a 64-character hex id or a program name`;
    if (/^\d+$/.test(q)) {
      if (!DIGITS.test(q)) throw new Error(`\`${shown}\` is too large to be a block height`);
      const height = Number(q);
      try {
        await getBlock(height);
      } catch (e) {
        if (e.status === 404) throw new Error(`There is no block at height ${height}${state.height != null ? ` (the chain is at ${state.height})` : ''}.`);
        throw e;
      }
      return `#/block/${height}`;
    }
    const lower = q.toLowerCase();
    if (HEX64.test(lower)) {
      // A prover's id is also its account's: the prover page is the richer one, so it comes first.
      const kinds = [['job', '/v1/jobs/'], ['workflow', '/v1/workflows/'], ['tx', '/v1/txs/'], ['prover', '/v1/provers/'], ['account', '/v1/accounts/'], ['program', '/v1/programs/']];
      const found = await Promise.all(kinds.map(([, p]) => api(p + lower, { optional: true }).then((r) => r != null, (e) => e)));
      const i = found.findIndex((r) => r === true);
      if (i >= 0) return `#/${kinds[i][0]}/${lower}`;
      const err = found.find((r) => r instanceof Error);
      if (err) throw err;
      throw new Error(`Nothing on this chain has the id ${lower}: it is no job, workflow, transaction, account, prover or program.`);
    }
    if (PROGRAM_NAME.test(q)) {
      const p = await api(`/v1/programs/${encodeURIComponent(q)}`, { optional: true });
      if (p) return `#/program/${encodeURIComponent(q)}`;
    }
    throw new Error(notFound);
  }

  async function runSearch(raw) {
    setSearchError('');
    document.body.dataset.ready = '0';
    try {
      const target = await resolveSearch(raw);
      $('search-input').value = '';
      go(target);
    } catch (e) {
      setSearchError(e.message);
      document.body.dataset.ready = '1';
    }
  }

  /** #/search?q=... : the same search as the box (handy for links and tests). */
  async function viewSearch(ctx) {
    const q = ctx.query.get('q') || '';
    $('search-input').value = q;
    let target;
    try {
      target = await resolveSearch(q);
    } catch (e) {
      setSearchError(e.message);
      return { title: 'Search', node: h('div', { class: 'error-box', role: 'alert' }, h('h2', null, 'No result'), h('p', null, e.message)), live: false };
    }
    location.replace(target);
    return new Promise(() => {}); // the hashchange renders the target
  }

  // ------------------------------------------------------------------ live updates
  //
  // New blocks come from the event stream /v1/events/blocks; without it, from polling
  // /v1/status every 2 s. The streams are opened only once the page has the user's focus
  // (or sees a click or key), so a tab in the background holds none of the node's limited
  // subscriber places; until then it polls.
  //
  // Headless Chromium never gets the streams: its --virtual-time-budget clock stops while a
  // request is pending, and an event stream always is, so `--dump-dom` and `--screenshot`
  // runs would never finish. Polling keeps such a page live and lets them finish.
  const HEADLESS = /\bHeadlessChrome\//.test(navigator.userAgent);

  const live = { es: null, poll: null, retry: null, wanted: false };

  function setLive(mode) {
    $('live-dot').className = `live-dot live-${mode}`;
    $('live').title = {
      stream: 'following finalized blocks live',
      poll: 'following finalized blocks (polling the node every 2 s)',
      fallback: 'block stream lost: polling the node every 2 s and retrying the stream',
      down: 'cannot reach the node',
    }[mode];
  }

  /** Shows the chain id and height from /v1/status; answers whether the height grew. */
  function noteStatus(st) {
    if (st && st.chain_id != null) $('network').textContent = String(st.chain_id);
    return !!(st && isHeight(st.height) && noteHeight(st.height));
  }

  function noteHeight(height) {
    if (!isHeight(height)) return false;
    const grew = state.height == null || height > state.height;
    if (grew) {
      state.height = height;
      $('live-height').textContent = String(height);
      const el = $('live');
      el.classList.remove('flash');
      void el.offsetWidth; // restart the CSS animation
      el.classList.add('flash');
    }
    return grew;
  }

  /** Whether live streams are open (the job page opens its own stream only then). */
  const streaming = () => live.es != null && live.es.readyState !== 2;

  function startBlockStream() {
    live.retry = null;
    if (!('EventSource' in window) || live.es) return;
    const es = new EventSource('/v1/events/blocks');
    live.es = es;
    es.addEventListener('open', () => { setLive('stream'); stopPolling(); });
    es.addEventListener('block', (ev) => {
      let b;
      try { b = JSON.parse(ev.data); } catch (_) { return; }
      if (b && isHeight(b.height) && noteHeight(b.height)) scheduleRefresh();
    });
    es.addEventListener('error', () => {
      // Dropped (or refused, e.g. 503 too_many_subscribers): poll instead, retry in 10 s.
      es.close();
      if (live.es === es) live.es = null;
      setLive('fallback');
      startPolling();
      if (!live.retry) live.retry = setTimeout(startBlockStream, 10000);
    });
  }

  function startPolling() {
    if (live.poll) return;
    live.poll = setInterval(async () => {
      try {
        const st = await api('/v1/status');
        if (!live.es) setLive(live.wanted ? 'fallback' : 'poll');
        if (noteStatus(st)) scheduleRefresh();
      } catch (_) {
        setLive('down');
      }
    }, 2000);
  }

  function stopPolling() {
    if (live.poll) { clearInterval(live.poll); live.poll = null; }
  }

  /** Upgrades from polling to the event streams, once. */
  function wantStreams() {
    if (live.wanted) return;
    live.wanted = true;
    for (const ev of ['focus', 'pointerdown', 'keydown']) window.removeEventListener(ev, wantStreams, true);
    startBlockStream();
  }

  // ------------------------------------------------------------------ start-up

  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    runSearch($('search-input').value);
  });
  window.addEventListener('hashchange', () => {
    setSearchError('');
    render(false);
  });
  api('/v1/status').then((st) => { noteStatus(st); setLive('poll'); }, () => setLive('down'));
  render(false);
  startPolling();
  if (HEADLESS) { /* polling only, see above */ } else if (document.hasFocus()) wantStreams();
  else for (const ev of ['focus', 'pointerdown', 'keydown']) window.addEventListener(ev, wantStreams, true);
})();
