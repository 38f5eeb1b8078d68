import { createHash } from 'node:crypto'
import type { StatusSnapshot, UpstreamStatus } from '../observe/status.js'

/*
 * The operator's status page (GET / on the admin port), in the spirit of HAProxy's stats page:
 * one self-contained HTML document, rendered in full on the server so it is useful before any
 * script runs, then kept live by a small inline script fed by `/events` (one StatusSnapshot a message).
 *
 * The markup is written once. The pure helpers below (escaping, units, cells, header, chart) are
 * ordinary typed functions that the server calls, and the page gets their compiled source through
 * `Function.prototype.toString`, so the browser builds exactly the same markup with no eval on
 * the server and no second copy to drift. Rules for them: reference only each other and JS
 * built-ins (no imports, no module constants), use ES2020 syntax, and never contain "</script".
 * Coverage here is V8's, which leaves function source untouched; a bundler that renamed them
 * would break the page, and the test runs the page's script in a fresh context to catch that.
 */

/** One table cell: the `data-field` hook, its inner HTML, its plain-text tooltip. */
type Cell = [field: string, html: string, title: string]

function esc(value: string | number): string {
  const entities: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
  return String(value).replace(/[&<>"']/g, c => entities[c] as string)
}

function num(n: number): string {
  return n.toLocaleString('en-US')
}

/** `3d 4h`, `2h 5m`, `5m`, `42s`: the two largest non-zero units. */
function dur(seconds: number): string {
  const t = Math.max(0, Math.floor(seconds))
  const parts: [number, string][] = [
    [Math.floor(t / 86400), 'd'],
    [Math.floor(t / 3600) % 24, 'h'],
    [Math.floor(t / 60) % 60, 'm'],
    [t % 60, 's'],
  ]
  const first = parts.findIndex(p => p[0] > 0)
  if (first < 0) return '0s'
  return parts
    .slice(first, first + 2)
    .filter(p => p[0] > 0)
    .map(p => p[0] + p[1])
    .join(' ')
}

/** Decimal units, as browsers' network panels show them: `512 B`, `1.2 MB`, `34 GB`. */
function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let i = 0
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000
    i++
  }
  return (i === 0 || n >= 10 ? String(Math.round(n)) : n.toFixed(1)) + ' ' + units[i]
}

function ms(v: number | null): string {
  if (v === null) return '–'
  return v < 10 ? v.toFixed(1) : num(Math.round(v))
}

function color(i: number): string {
  const palette = ['#3b82f6', '#ec4899', '#14b8a6', '#f59e0b', '#8b5cf6', '#06b6d4', '#84cc16', '#f97316']
  return palette[i % palette.length] as string
}

/** Counts that mean trouble stand out once they are not zero. */
function bad(n: number): string {
  return n > 0 ? '<b class="bad">' + num(n) + '</b>' : '0'
}

/** One upstream's cells, in column order. */
function cells(u: UpstreamStatus, now: number): Cell[] {
  const r = u.responses
  const f = u.failuresByKind
  const c = u.lastCheck
  const l = u.latencyMs
  const check = c
    ? '<span class="badge check-' +
      (c.ok ? 'ok">ok' : 'fail">fail') +
      '</span> <small>' +
      dur((now - c.at) / 1000) +
      ' ago</small><small class="why">' +
      esc(c.detail) +
      '</small>'
    : '–'
  return [
    ['id', esc(u.id), u.backup ? 'backup upstream' : ''],
    [
      'state',
      '<span class="badge state-' +
        esc(u.state) +
        '">' +
        esc(u.state) +
        '</span>' +
        (u.reason ? ' <small class="why">' + esc(u.reason) + '</small>' : ''),
      u.reason,
    ],
    [
      'weight',
      num(u.weight) + (u.effectiveWeight === u.weight ? '' : ' <small>→ ' + num(u.effectiveWeight) + '</small>'),
      u.effectiveWeight === u.weight ? '' : 'effective weight ' + u.effectiveWeight + ' (slow start)',
    ],
    [
      'inFlight',
      num(u.inFlight) + (u.maxConns ? ' <small>/ ' + num(u.maxConns) + '</small>' : ''),
      u.maxConns ? 'max conns ' + u.maxConns : '',
    ],
    ['requests', num(u.requests), u.perSecond.toFixed(1) + ' req/s over the last 10 s'],
    ['share', (u.share * 100).toFixed(1) + '%', ''],
    ['2xx', num(r['2xx']), r['1xx'] ? '1xx: ' + r['1xx'] : ''],
    ['3xx', num(r['3xx']), ''],
    ['4xx', num(r['4xx']), ''],
    ['5xx', bad(r['5xx']), ''],
    ['failures', bad(u.failures), 'connect ' + f.connect + ' · timeout ' + f.timeout + ' · reset ' + f.reset + ' · invalid ' + f.invalid],
    ['retries', num(u.retries), ''],
    ['lastCheck', check, c ? c.detail : 'no active check has finished'],
    ['p50', ms(l ? l.p50 : null), ''],
    ['p95', ms(l ? l.p95 : null), ''],
    ['p99', ms(l ? l.p99 : null), ''],
    ['bytesIn', bytes(u.bytesIn), num(u.bytesIn) + ' bytes'],
    ['bytesOut', bytes(u.bytesOut), num(u.bytesOut) + ' bytes'],
  ]
}

/** The header's figures (the contents of `#totals`). */
function totals(s: StatusSnapshot): string {
  const stat = (key: string, label: string, value: string, title: string): string =>
    '<div data-stat="' + key + '"' + (title ? ' title="' + esc(title) + '"' : '') + '><dt>' + label + '</dt><dd>' + value + '</dd></div>'
  const u = s.requests.unrouted
  const unrouted = u['1xx'] + u['2xx'] + u['3xx'] + u['4xx'] + u['5xx']
  return (
    (s.draining ? '<span id="draining" class="badge draining">draining</span>' : '') +
    '<dl>' +
    stat('uptime', 'Uptime', dur(s.uptimeSeconds), '') +
    stat(
      'connections',
      'Connections',
      num(s.connections.open) + ' <small>/ ' + num(s.connections.total) + '</small>',
      'open now / accepted since start',
    ) +
    stat('perSecond', 'Req/s', s.requests.perSecond.toFixed(1), 'over the last 10 s') +
    stat('requests', 'Requests', num(s.requests.total), '') +
    stat('unrouted', 'Unrouted', bad(unrouted), 'answered by the balancer itself: 4xx ' + u['4xx'] + ' · 5xx ' + u['5xx']) +
    stat('policy', 'Policy', esc(s.policy), '') +
    stat('workers', 'Workers', num(s.workers), '') +
    '</dl>'
  )
}

/** Requests per second per upstream over `rateSeconds`, as SVG polylines plus a legend (the contents of `#chart`). */
function chart(s: StatusSnapshot): string {
  const n = s.rateSeconds.length
  const w = Math.max(n - 1, 1)
  let peak = 1
  for (const u of s.upstreams) for (const v of u.rate) peak = Math.max(peak, v)
  // x is the second's index, so the viewBox is as wide as the window; the SVG stretches to fit.
  const lines = s.upstreams.map((u, i) => {
    const skip = n - u.rate.length
    const points = u.rate.map((v, x) => x + skip + ',' + +(100 - (v / peak) * 96).toFixed(1)).join(' ')
    return '<polyline data-upstream="' + esc(u.id) + '" stroke="' + color(i) + '" points="' + points + '"/>'
  })
  const legend = s.upstreams.map(
    (u, i) =>
      '<li data-upstream="' +
      esc(u.id) +
      '"><svg viewBox="0 0 12 3" aria-hidden="true"><rect width="12" height="3" rx="1.5" fill="' +
      color(i) +
      '"/></svg>' +
      esc(u.id) +
      ' <small>' +
      u.perSecond.toFixed(1) +
      '/s</small></li>',
  )
  return (
    '<div class="axis"><h2>Requests per second</h2><span>peak ' +
    num(peak) +
    '/s</span></div>' +
    '<svg viewBox="0 0 ' +
    w +
    ' 100" preserveAspectRatio="none" role="img" aria-label="requests per second per upstream">' +
    '<line class="grid" x1="0" x2="' +
    w +
    '" y1="4" y2="4"/><line class="grid" x1="0" x2="' +
    w +
    '" y1="52" y2="52"/>' +
    '<line class="grid" x1="0" x2="' +
    w +
    '" y1="100" y2="100"/>' +
    lines.join('') +
    '</svg>' +
    '<div class="axis"><span>' +
    dur(n) +
    ' ago</span><span>now</span></div><ul class="legend">' +
    legend.join('') +
    '</ul>'
  )
}

function title(s: StatusSnapshot): string {
  const up = s.upstreams.filter(u => u.state === 'up').length
  return 'Switchyard · ' + up + '/' + s.upstreams.length + ' up' + (s.draining ? ' · draining' : '')
}

const SHARED = [esc, num, dur, bytes, ms, color, bad, cells, totals, chart, title]

/** [data-field, heading, tooltip]: the same order as `cells`. */
const COLUMNS = [
  ['id', 'Upstream', ''],
  ['state', 'State', ''],
  ['weight', 'Weight', ''],
  ['inFlight', 'In flight', ''],
  ['requests', 'Requests', ''],
  ['share', 'Share', 'share of all requests'],
  ['2xx', '2xx', ''],
  ['3xx', '3xx', ''],
  ['4xx', '4xx', ''],
  ['5xx', '5xx', ''],
  ['failures', 'Failures', 'failed tries'],
  ['retries', 'Retries', 'tries sent on to another upstream'],
  ['lastCheck', 'Last check', 'last active health check'],
  ['p50', 'p50 ms', 'response time over the last minute'],
  ['p95', 'p95 ms', ''],
  ['p99', 'p99 ms', ''],
  ['bytesIn', 'In', 'response body bytes from the upstream'],
  ['bytesOut', 'Out', 'request body bytes to the upstream'],
]

/*
 * The live part, plain ES2020 run after the helpers. Rows are keyed by upstream id and cells are
 * rewritten only when their markup changed, so a tooltip being read or text being selected survives
 * the once-a-second updates. EventSource reconnects by itself after a dropped stream (readyState
 * CONNECTING); an HTTP error or a wrong content type closes it for good, so then start again.
 */
const CLIENT = `
const $ = id => document.getElementById(id)
const tbody = $('rows')
const rows = new Map(Array.from(tbody.children, tr => [tr.dataset.upstream, tr]))
function update(s) {
  document.title = title(s)
  $('totals').innerHTML = totals(s)
  $('chart').innerHTML = chart(s)
  const ids = new Set(s.upstreams.map(u => u.id))
  rows.forEach((tr, id) => { if (!ids.has(id)) { tr.remove(); rows.delete(id) } })
  s.upstreams.forEach((u, i) => {
    const cs = cells(u, s.now)
    let tr = rows.get(u.id)
    if (!tr) {
      tr = document.createElement('tr')
      tr.dataset.upstream = u.id
      for (const c of cs) tr.appendChild(document.createElement('td')).dataset.field = c[0]
      rows.set(u.id, tr)
    }
    tr.dataset.state = u.state
    cs.forEach((c, j) => {
      const td = tr.children[j]
      if (td.switchyardHtml !== c[1]) { td.innerHTML = c[1]; td.switchyardHtml = c[1] }
      if (td.title !== c[2]) td.title = c[2]
    })
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null)
  })
}
function live(ok) {
  document.body.dataset.live = ok ? 'live' : 'lost'
  $('conn').hidden = ok
}
function connect() {
  const es = new EventSource('events')
  es.onmessage = e => { update(JSON.parse(e.data)); live(true) }
  es.onerror = () => {
    live(false)
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000)
  }
}
connect()
`

const CSS = `
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1d1f23;--mute:#6b7280;--card:#fff;--line:#e4e6ea;--up:#16a34a;--down:#dc2626;--drain:#d97706;--backup:#6b7280}
@media (prefers-color-scheme:dark){:root{--bg:#111316;--fg:#e6e7ea;--mute:#9aa1ad;--card:#1a1d21;--line:#2c3036;--up:#4ade80;--down:#f87171;--drain:#fbbf24;--backup:#9aa1ad}}
*{box-sizing:border-box}
body{margin:0;padding:16px;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-variant-numeric:tabular-nums}
header,#totals,dl,.axis,.legend{display:flex;flex-wrap:wrap;align-items:center}
header{gap:8px 24px;margin-bottom:16px}#totals{gap:8px 16px}dl{gap:6px 20px;margin:0}
h1{font-size:18px;margin:0}h2{font-size:13px;margin:0}
dt,th{font-size:11px;color:var(--mute);text-transform:uppercase;letter-spacing:.04em;font-weight:600}
dd{margin:0;font-weight:600}small{color:var(--mute);font-weight:400}
.badge{--c:var(--backup);display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600;color:var(--c);background:color-mix(in srgb,var(--c) 14%,transparent);border:1px solid color-mix(in srgb,var(--c) 40%,transparent)}
.state-up,.check-ok{--c:var(--up)}.state-down,.check-fail{--c:var(--down)}.state-draining,.draining{--c:var(--drain)}
.bad{color:var(--down)}
#conn{position:sticky;top:0;z-index:2;margin:-16px -16px 16px;padding:8px 16px;background:var(--down);color:#fff;font-weight:600}
body[data-live=lost] main{opacity:.55}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;margin-bottom:16px}
#chart{padding:10px 12px}.axis{justify-content:space-between;font-size:11px;color:var(--mute)}
#chart>svg{display:block;width:100%;height:110px;margin:4px 0}
polyline{fill:none;stroke-width:1.75;stroke-linejoin:round;vector-effect:non-scaling-stroke}
.grid{stroke:var(--line);vector-effect:non-scaling-stroke}
.legend{gap:2px 16px;list-style:none;margin:6px 0 0;padding:0;font-size:12px}
.legend svg{display:inline-block;width:12px;height:3px;margin-right:6px;vertical-align:middle}
.wrap{overflow-x:auto}table{border-collapse:collapse;width:100%;white-space:nowrap}
th,td{padding:6px;text-align:right;border-bottom:1px solid var(--line);vertical-align:top}td{font-size:13px}
tbody tr:last-child td{border-bottom:0}th{white-space:normal;vertical-align:bottom}th:first-child,td:first-child{padding-left:12px}
th:first-child,td:first-child{text-align:left;position:sticky;left:0;background:var(--card);font-weight:600}
[data-field=state],[data-field=lastCheck]{text-align:left}
.why{display:block;white-space:normal;min-width:14ch;max-width:28ch;font-size:12px}
tr[data-state=down] td{background:color-mix(in srgb,var(--down) 7%,var(--card))}
tr[data-state=draining] td,tr[data-state=backup] td{color:var(--mute)}
@media (max-width:600px){body{padding:10px}#conn{margin:-10px -10px 10px}th,td{padding:5px 8px}}
`

/** The page's one script: the shared helpers, then the live part. The same text on every page. */
const SCRIPT = '(() => {\n' + SHARED.map(fn => fn.toString()).join('\n') + CLIENT + '})()'

/** A CSP hash source for an inline element's text (CSP Level 3 §8.4: SHA-256 of its UTF-8 bytes). */
const hashSource = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`

/**
 * The dashboard's Content-Security-Policy. Everything the page runs or styles is inline and the
 * same on every load, so it is allowed by hash rather than `'unsafe-inline'`: a string that slipped
 * past `esc` still could not run, nor restyle the page (the markup has no style attributes; the SVG
 * colours are presentation attributes, which CSP leaves alone). `connect-src 'self'` lets the
 * EventSource reach `/events`; `img-src data:` is the empty icon; nothing may frame the page
 * (clickjacking), set a `<base>`, or post a form.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  `script-src ${hashSource(SCRIPT)}`,
  `style-src ${hashSource(CSS)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

function row(u: UpstreamStatus, now: number): string {
  const tds = cells(u, now).map(
    ([field, html, tip]) => '<td data-field="' + field + '"' + (tip ? ' title="' + esc(tip) + '"' : '') + '>' + html + '</td>',
  )
  return '<tr data-upstream="' + esc(u.id) + '" data-state="' + esc(u.state) + '">' + tds.join('') + '</tr>'
}

/**
 * The dashboard page for one snapshot: complete HTML with inline CSS and script, no external
 * resources. It shows `snapshot` at once and then follows `events` (relative to the page) as a
 * stream of snapshots.
 */
export function renderDashboard(snapshot: StatusSnapshot): string {
  const head = COLUMNS.map(
    ([field, label, tip]) => '<th data-field="' + field + '"' + (tip ? ' title="' + tip + '"' : '') + '>' + label + '</th>',
  )
  return (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="color-scheme" content="light dark">' +
    // No icon: without this the browser asks for /favicon.ico, a 404 on every load.
    '<link rel="icon" href="data:,">' +
    '<title>' +
    esc(title(snapshot)) +
    '</title><style>' +
    CSS +
    '</style></head>\n<body data-live="connecting">' +
    '<div id="conn" role="status" hidden>Connection to the balancer lost — reconnecting…</div>' +
    '<header><h1>Switchyard</h1><div id="totals">' +
    totals(snapshot) +
    '</div></header>\n<main>' +
    '<section id="chart" class="card">' +
    chart(snapshot) +
    '</section>\n' +
    '<div class="card wrap"><table><thead><tr>' +
    head.join('') +
    '</tr></thead><tbody id="rows">' +
    snapshot.upstreams.map(u => row(u, snapshot.now)).join('\n') +
    '</tbody></table></div></main>\n' +
    '<script>' +
    SCRIPT +
    '</script></body></html>\n'
  )
}
