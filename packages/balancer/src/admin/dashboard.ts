// The operator's status page: one self-contained HTML document, its live script, its style and its CSP.
import { createHash } from 'node:crypto'
import type { StatusSnapshot, UpstreamStatus } from '../observe/status.js'
import { SHARED, cachePanel, cells, chart, esc, title, totals } from './markup.js'

/** [data-field, heading, tooltip]: the same order as `cells`. */
const COLUMNS = [
  ['id', 'Upstream', ''],
  ['state', 'State', ''],
  ['admin', 'Admin', 'admin state: drain takes no new clients, maint no requests and no checks'],
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
  ['requestBodyBytes', 'Request bodies', 'request body bytes sent to the upstream (uploads)'],
  ['responseBodyBytes', 'Response bodies', 'response body bytes received from the upstream (downloads)'],
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
  $('cache').innerHTML = cachePanel(s)
  $('cache').hidden = !s.cache
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
    const msg = tr.querySelector('.msg')
    if (msg) msg.textContent = messages.get(u.id) || ''
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null)
  })
  last = s
}
// The admin token is asked for once and kept for this tab only (sessionStorage), never in the page.
const TOKEN_KEY = 'switchyard-admin-token'
const messages = new Map()
let last
tbody.addEventListener('click', async e => {
  const button = e.target.closest('button[data-set]')
  if (!button) return
  const id = button.closest('tr').dataset.upstream
  let token = sessionStorage.getItem(TOKEN_KEY)
  if (!token) {
    token = (prompt('Admin token (from --admin-token-file or SWITCHYARD_ADMIN_TOKEN)') || '').trim()
    if (!token) return
    sessionStorage.setItem(TOKEN_KEY, token)
  }
  let text
  let ok = false
  try {
    const r = await fetch('upstreams/' + encodeURIComponent(id) + '/state', {
      method: 'POST',
      headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' },
      body: JSON.stringify({ state: button.dataset.set }),
    })
    ok = r.ok
    text = ok ? '' : (await r.text()).trim()
    if (r.status === 401) sessionStorage.removeItem(TOKEN_KEY)
  } catch (err) {
    text = 'the balancer did not answer: ' + err.message
  }
  if (ok) messages.delete(id)
  else messages.set(id, text)
  if (last) update(last)
})
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
.admin-drain{--c:var(--drain)}.admin-maint{--c:var(--down)}.admin-ready{--c:var(--up)}
button{font:inherit;font-size:12px;margin-left:4px;padding:1px 7px;border-radius:5px;border:1px solid var(--line);background:var(--card);color:var(--fg);cursor:pointer}
button:disabled{opacity:.45;cursor:default}.msg{display:block;white-space:normal;max-width:32ch;color:var(--down)}
#conn{position:sticky;top:0;z-index:2;margin:-16px -16px 16px;padding:8px 16px;background:var(--down);color:#fff;font-weight:600}
body[data-live=lost] main{opacity:.55}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;margin-bottom:16px}
#chart,#cache{padding:10px 12px}#cache dl{margin-top:6px}meter{width:90px;height:10px;vertical-align:middle}.axis{justify-content:space-between;font-size:11px;color:var(--mute)}
#chart>svg{display:block;width:100%;height:110px;margin:4px 0}
polyline{fill:none;stroke-width:1.75;stroke-linejoin:round;vector-effect:non-scaling-stroke}
.grid{stroke:var(--line);vector-effect:non-scaling-stroke}
.legend{gap:2px 16px;list-style:none;margin:6px 0 0;padding:0;font-size:12px}
.legend svg{display:inline-block;width:12px;height:3px;margin-right:6px;vertical-align:middle}
.wrap{overflow-x:auto}table{border-collapse:collapse;width:100%;white-space:nowrap}
th,td{padding:6px;text-align:right;border-bottom:1px solid var(--line);vertical-align:top}td{font-size:13px}
tbody tr:last-child td{border-bottom:0}th{white-space:normal;vertical-align:bottom}th:first-child,td:first-child{padding-left:12px}
th:first-child,td:first-child{text-align:left;position:sticky;left:0;background:var(--card);font-weight:600}
[data-field=state],[data-field=admin],[data-field=lastCheck]{text-align:left}
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
    '<section id="cache" class="card"' +
    (snapshot.cache ? '' : ' hidden') +
    '>' +
    cachePanel(snapshot) +
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
