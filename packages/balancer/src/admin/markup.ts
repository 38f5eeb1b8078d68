// The dashboard's markup, written once: helpers the server calls and the page runs as the same source.
import type { StatusSnapshot, UpstreamStatus } from '../observe/status.js'

/*
 * The operator's status page (GET / on the admin port), in the spirit of HAProxy's stats page:
 * one self-contained HTML document, rendered in full on the server so it is useful before any
 * script runs, then kept live by a small inline script fed by `/events` (one StatusSnapshot a message).
 *
 * The markup is written once. The pure helpers here (escaping, units, cells, header, chart) are
 * ordinary typed functions that the server calls, and the page gets their compiled source through
 * `Function.prototype.toString`, so the browser builds exactly the same markup with no eval on
 * the server and no second copy to drift. Rules for them: reference only each other and JS
 * built-ins (no imports, no module constants), use ES2020 syntax, and never contain "</script".
 * Coverage here is V8's, which leaves function source untouched; a bundler that renamed them
 * would break the page, and the test runs the page's script in a fresh context to catch that.
 */

/** One table cell: the `data-field` hook, its inner HTML, its plain-text tooltip. */
export type Cell = [field: string, html: string, title: string]

export function esc(value: string | number): string {
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

/**
 * The admin state and the buttons that change it (the page's script sends them, with the token it
 * keeps for the tab); `.msg` shows what a failed call answered.
 */
function admin(u: UpstreamStatus): string {
  const buttons = [
    ['drain', 'Drain'],
    ['maint', 'Maint'],
    ['ready', 'Ready'],
  ].map(
    b =>
      '<button type="button" data-set="' +
      b[0] +
      '"' +
      (u.adminState === b[0] || u.state === 'draining' ? ' disabled' : '') +
      '>' +
      b[1] +
      '</button>',
  )
  return (
    '<span class="badge admin-' +
    esc(u.adminState) +
    '">' +
    esc(u.adminState) +
    '</span> ' +
    buttons.join('') +
    '<small class="msg" role="status"></small>'
  )
}

/** One upstream's cells, in column order. */
export function cells(u: UpstreamStatus, now: number): Cell[] {
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
    ['admin', admin(u), u.from ? 'found in DNS under ' + u.from : ''],
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
    ['requestBodyBytes', bytes(u.requestBodyBytes), num(u.requestBodyBytes) + ' bytes'],
    ['responseBodyBytes', bytes(u.responseBodyBytes), num(u.responseBodyBytes) + ' bytes'],
  ]
}

/** The header's figures (the contents of `#totals`). */
export function totals(s: StatusSnapshot): string {
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
      num(s.connections.open) +
        ' <small>/ ' +
        num(s.connections.total) +
        '</small>' +
        (s.connections.listeners.length > 1
          ? '<small class="listeners">' +
            s.connections.listeners.map(l => ' · ' + esc(l.listener + ' ' + l.protocol) + ' ' + num(l.open)).join('') +
            '</small>'
          : ''),
      'open now / accepted since start; open by listener and protocol',
    ) +
    stat('perSecond', 'Req/s', s.requests.perSecond.toFixed(1), 'over the last 10 s') +
    stat('requests', 'Requests', num(s.requests.total), '') +
    stat('unrouted', 'Unrouted', bad(unrouted), 'answered by the balancer itself: 4xx ' + u['4xx'] + ' · 5xx ' + u['5xx']) +
    stat('policy', 'Policy', esc(s.policy), '') +
    stat('workers', 'Workers', num(s.workers), '') +
    '</dl>'
  )
}

/**
 * The edge cache's panel (the contents of `#cache`): the hit ratio over the last minute, the bytes
 * it holds against its budget, and its entries; empty when the cache is off.
 */
export function cachePanel(s: StatusSnapshot): string {
  const c = s.cache
  if (!c) return ''
  const m = c.lastMinute
  const served = m.HIT + m.STALE + m.UPDATING + m.REVALIDATED
  const looked = served + m.MISS + m.EXPIRED
  const item = (key: string, label: string, value: string, title: string): string =>
    '<div data-cache="' + key + '" title="' + esc(title) + '"><dt>' + label + '</dt><dd>' + value + '</dd></div>'
  return (
    '<h2>Edge cache</h2><dl>' +
    item(
      'hitRatio',
      'Hit ratio',
      (c.hitRatio === null ? '–' : (c.hitRatio * 100).toFixed(1) + '%') + ' <small>of ' + num(looked) + '</small>',
      'last minute: ' +
        num(served) +
        ' served from the cache of ' +
        num(looked) +
        ' looked up (HIT ' +
        m.HIT +
        ' · MISS ' +
        m.MISS +
        ' · EXPIRED ' +
        m.EXPIRED +
        ' · STALE ' +
        m.STALE +
        ' · UPDATING ' +
        m.UPDATING +
        ' · REVALIDATED ' +
        m.REVALIDATED +
        ')',
    ) +
    item(
      'bytes',
      'Memory',
      bytes(c.bytes) +
        ' <small>/ ' +
        bytes(c.maxBytes) +
        '</small> <meter min="0" max="' +
        c.maxBytes +
        '" value="' +
        c.bytes +
        '"></meter>',
      num(c.bytes) + ' of ' + num(c.maxBytes) + ' bytes, headers counted',
    ) +
    item('entries', 'Entries', num(c.entries), 'responses stored, every variant counted') +
    item('evictions', 'Evictions', num(c.evictions), 'responses dropped to make room, since start') +
    '</dl>'
  )
}

/** Requests per second per upstream over `rateSeconds`, as SVG polylines plus a legend (the contents of `#chart`). */
export function chart(s: StatusSnapshot): string {
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

export function title(s: StatusSnapshot): string {
  const up = s.upstreams.filter(u => u.state === 'up').length
  return 'Switchyard · ' + up + '/' + s.upstreams.length + ' up' + (s.draining ? ' · draining' : '')
}

/** Every helper, in an order where each comes after those it calls: the page gets their source. */
export const SHARED = [esc, num, dur, bytes, ms, color, bad, admin, cells, totals, chart, title, cachePanel]
