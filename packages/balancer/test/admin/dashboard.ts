// The dashboard page and its markup (admin/markup.ts: the helpers it shares with the browser), rendered and run.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer, get, type ClientRequest, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createContext, runInContext } from 'node:vm'
import t from 'tap'
import { DASHBOARD_CSP, renderDashboard } from '../../src/admin/dashboard.js'
import type { StatusSnapshot, UpstreamStatus } from '../../src/observe/status.js'

const NOW = 1_700_000_000_000

/** An edge cache a third full, 80% hits over the last minute. */
const CACHE: NonNullable<StatusSnapshot['cache']> = {
  requests: { HIT: 9000, MISS: 900, EXPIRED: 50, STALE: 40, UPDATING: 8, REVALIDATED: 2, BYPASS: 300 },
  lastMinute: { HIT: 70, MISS: 18, EXPIRED: 2, STALE: 6, UPDATING: 2, REVALIDATED: 2, BYPASS: 5 },
  bytes: 22_369_621,
  maxBytes: 67_108_864,
  entries: 1234,
  evictions: 56,
  hitRatio: 0.8,
}
const EVIL = 'active check failed 3 times: GET /healthz -> <script>alert("x")</script> & \'q\''

function upstream(id: string, over: Partial<UpstreamStatus> = {}): UpstreamStatus {
  return {
    id,
    state: 'up',
    reason: '',
    adminState: 'ready',
    from: null,
    weight: 1,
    effectiveWeight: 1,
    backup: false,
    maxConns: 0,
    inFlight: 3,
    requests: 123_456,
    share: 0.9876,
    responses: { '1xx': 0, '2xx': 120_000, '3xx': 3000, '4xx': 456, '5xx': 0 },
    failures: 0,
    failuresByKind: { connect: 0, timeout: 0, reset: 0, invalid: 0 },
    retries: 0,
    lastCheck: { ok: true, detail: '200 in 3 ms', at: NOW - 4000 },
    latencyMs: { p50: 4.25, p95: 18.7, p99: 1234.5 },
    requestBodyBytes: 23_456_789,
    responseBodyBytes: 1_234_567,
    bytesIn: 1_234_567,
    bytesOut: 23_456_789,
    perSecond: 20,
    // Idle, then the peak in the last second: the line runs along the bottom and ends at the top.
    rate: Array.from({ length: 300 }, (_, i) => (i === 299 ? 20 : 0)),
    ...over,
  }
}

/** A realistic snapshot: one upstream up, one down for a reason that tries to inject markup. */
function snapshot(over: Partial<StatusSnapshot> = {}): StatusSnapshot {
  return {
    version: 1,
    now: NOW,
    startedAt: NOW - 93_784_000,
    uptimeSeconds: 93_784,
    processes: [{ pid: 4242, requests: 250_123, connectionsOpen: 17 }],
    workers: 4,
    policy: 'least-requests',
    draining: false,
    connections: { open: 17, total: 98_231, listeners: [] },
    requests: { total: 128_666, perSecond: 83.64, unrouted: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 2, '5xx': 11 } },
    rateSeconds: Array.from({ length: 300 }, (_, i) => NOW - (300 - i) * 1000),
    cache: null,
    upstreams: [
      upstream('app-1.internal:8080'),
      upstream('10.0.0.2:8080', {
        state: 'down',
        reason: EVIL,
        weight: 3,
        effectiveWeight: 1,
        maxConns: 100,
        inFlight: 0,
        requests: 5210,
        share: 0.0124,
        responses: { '1xx': 4, '2xx': 5000, '3xx': 0, '4xx': 10, '5xx': 200 },
        failures: 14,
        failuresByKind: { connect: 12, timeout: 2, reset: 0, invalid: 0 },
        retries: 14,
        lastCheck: { ok: false, detail: 'connect ECONNREFUSED <1>', at: NOW - 125_000 },
        latencyMs: null,
        requestBodyBytes: 5e15,
        responseBodyBytes: 532,
        bytesIn: 532,
        bytesOut: 5e15,
        perSecond: 0,
        // The second half of the window only, as for an upstream a reload added: it lines up on the right.
        rate: Array.from({ length: 150 }, () => 10),
      }),
    ],
    ...over,
  }
}

const quote = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** The inner HTML of the table row for `id`. */
function row(html: string, id: string): string {
  const match = new RegExp(`<tr data-upstream="${quote(id)}"[^>]*>(.*?)</tr>`).exec(html)
  if (!match) throw new Error(`no row for ${id}`)
  return match[1] as string
}

/** One cell of a row: its markup and its tooltip (as written in the attribute). */
function cell(html: string, id: string, field: string): { html: string; title: string | undefined } {
  const match = new RegExp(`<td data-field="${quote(field)}"(?: title="([^"]*)")?>(.*?)</td>`).exec(row(html, id))
  if (!match) throw new Error(`no ${field} cell for ${id}`)
  return { html: match[2] as string, title: match[1] }
}

/** The text a cell shows, tags removed. */
const text = (markup: string): string => markup.replace(/<[^>]*>/g, '')

/** What lies between `open` and `close` in `html`. */
function between(html: string, open: string, close: string): string {
  const start = html.indexOf(open)
  const end = html.indexOf(close, start + open.length)
  if (start < 0 || end < 0) throw new Error(`no ${open}…${close}`)
  return html.slice(start + open.length, end)
}

const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" }
/** An attribute's value as the browser reads it. */
const unescape = (s: string): string => s.replace(/&(?:amp|lt|gt|quot|#39);/g, e => ENTITIES[e] as string)

const fieldsOf = (markup: string): string[] => [...markup.matchAll(/<t[dh] data-field="([^"]+)"/g)].map(m => m[1] as string)

t.test('one row per upstream, with a cell for each field', async t => {
  const html = renderDashboard(snapshot())
  t.match(html, /^<!doctype html><html lang="en">/, 'a complete document')
  t.match(html, /<\/html>\n$/, 'that ends')
  t.equal(html.match(/<tr data-upstream=/g)?.length, 2, 'two upstream rows')
  const columns = fieldsOf(between(html, '<thead>', '</thead>'))
  t.same(
    columns,
    [
      'id',
      'state',
      'admin',
      'weight',
      'inFlight',
      'requests',
      'share',
      '2xx',
      '3xx',
      '4xx',
      '5xx',
      'failures',
      'retries',
      'lastCheck',
      'p50',
      'p95',
      'p99',
      'requestBodyBytes',
      'responseBodyBytes',
    ],
    'the columns',
  )
  for (const id of ['app-1.internal:8080', '10.0.0.2:8080'])
    t.same(fieldsOf(row(html, id)), columns, `${id}: the cells line up with the columns`)

  const up = (field: string): string => text(cell(html, 'app-1.internal:8080', field).html)
  const down = (field: string): string => text(cell(html, '10.0.0.2:8080', field).html)
  t.equal(up('id'), 'app-1.internal:8080', 'id')
  t.match(cell(html, 'app-1.internal:8080', 'state').html, /^<span class="badge state-up">up<\/span>$/, 'up: a badge and no reason')
  t.match(
    cell(html, '10.0.0.2:8080', 'state').html,
    /^<span class="badge state-down">down<\/span> <small class="why">active check failed/,
    'down: a badge, then the reason',
  )
  t.match(html, /<tr data-upstream="10\.0\.0\.2:8080" data-state="down">/, 'the row carries its state')
  t.equal(up('weight'), '1', 'weight alone when it is in force')
  t.equal(down('weight'), '3 → 1', 'weight and the effective weight during slow start')
  t.equal(cell(html, '10.0.0.2:8080', 'weight').title, 'effective weight 1 (slow start)', 'the effective weight explained')
  t.equal(up('inFlight'), '3', 'in flight')
  t.equal(down('inFlight'), '0 / 100', 'in flight against max conns')
  t.equal(up('requests'), '123,456', 'requests, grouped')
  t.equal(cell(html, 'app-1.internal:8080', 'requests').title, '20.0 req/s over the last 10 s', 'the rate on hover')
  t.equal(up('share'), '98.8%', 'share')
  t.equal(down('share'), '1.2%', 'a small share')
  t.same([up('2xx'), up('3xx'), up('4xx'), up('5xx')], ['120,000', '3,000', '456', '0'], 'responses by class')
  t.equal(cell(html, 'app-1.internal:8080', '2xx').title, undefined, 'no 1xx, no tooltip')
  t.equal(cell(html, '10.0.0.2:8080', '2xx').title, '1xx: 4', '1xx responses on hover')
  t.equal(cell(html, '10.0.0.2:8080', '5xx').html, '<b class="bad">200</b>', '5xx stand out')
  t.equal(cell(html, 'app-1.internal:8080', 'failures').html, '0', 'no failures, plain')
  t.equal(down('failures'), '14', 'failures')
  t.equal(cell(html, '10.0.0.2:8080', 'failures').title, 'connect 12 · timeout 2 · reset 0 · invalid 0', 'failures by kind on hover')
  t.equal(down('retries'), '14', 'retries')
  t.equal(up('lastCheck'), 'ok 4s ago200 in 3 ms', 'a passing check, its age and detail')
  t.match(
    cell(html, '10.0.0.2:8080', 'lastCheck').html,
    /^<span class="badge check-fail">fail<\/span> <small>2m 5s ago<\/small>/,
    'a failing check',
  )
  t.same([up('p50'), up('p95'), up('p99')], ['4.3', '19', '1,235'], 'latency: one decimal below 10 ms, whole ms above')
  t.same([down('p50'), down('p95'), down('p99')], ['–', '–', '–'], 'no latency without requests: a dash')
  t.same(
    [up('requestBodyBytes'), up('responseBodyBytes'), down('requestBodyBytes'), down('responseBodyBytes')],
    ['23 MB', '1.2 MB', '5000 TB', '532 B'],
    'bytes in human units, uploads then downloads',
  )
  t.equal(cell(html, 'app-1.internal:8080', 'responseBodyBytes').title, '1,234,567 bytes', 'exact bytes on hover')
  t.match(
    html,
    /<th[^>]*title="request body bytes sent to the upstream \(uploads\)"[^>]*>Request bodies<\/th>/,
    'the column says what it counts',
  )
  t.equal(cell(html, 'app-1.internal:8080', 'id').title, undefined, 'a primary has no id tooltip')
})

t.test('the other states and missing data', async t => {
  const html = renderDashboard(
    snapshot({
      upstreams: [
        upstream('b:1', { state: 'backup', backup: true, lastCheck: null, responseBodyBytes: 0 }),
        upstream('d:1', { state: 'draining', reason: 'removed by a reload' }),
      ],
    }),
  )
  t.equal(cell(html, 'b:1', 'state').html, '<span class="badge state-backup">backup</span>', 'backup badge')
  t.equal(cell(html, 'b:1', 'id').title, 'backup upstream', 'a backup says so on hover')
  t.equal(cell(html, 'b:1', 'lastCheck').html, '–', 'no check yet: a dash')
  t.equal(cell(html, 'b:1', 'lastCheck').title, 'no active check has finished', 'and why')
  t.equal(cell(html, 'b:1', 'responseBodyBytes').html, '0 B', 'zero bytes')
  t.equal(text(cell(html, 'd:1', 'state').html), 'draining removed by a reload', 'draining badge and reason')
})

t.test('every string from the snapshot is escaped', async t => {
  const html = renderDashboard(snapshot({ policy: '"><img src=x>' }))
  t.notMatch(html, /<script>alert/, 'the reason cannot open a script')
  t.notMatch(html, /<img/, 'the policy cannot add an element')
  t.match(
    cell(html, '10.0.0.2:8080', 'state').html,
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;',
    'reason escaped in the cell',
  )
  t.match(cell(html, '10.0.0.2:8080', 'state').title, /^[^<>"]*$/, 'and in its tooltip')
  t.equal(unescape(cell(html, '10.0.0.2:8080', 'state').title ?? ''), EVIL, 'which reads as the reason')
  t.match(cell(html, '10.0.0.2:8080', 'lastCheck').html, 'connect ECONNREFUSED &lt;1&gt;', 'check detail escaped')
  t.match(between(html, '<div id="totals">', '</div></header>'), '<dd>&quot;&gt;&lt;img src=x&gt;</dd>', 'policy escaped')
  t.equal(html.split('</script').length, 2, 'the only "</script" closes the page script')
  t.notMatch(html, /<!--/, 'nothing that would change how the script is parsed')
})

t.test('header: totals, and a badge while draining', async t => {
  const calm = renderDashboard(snapshot())
  const totals = between(calm, '<div id="totals">', '</div></header>')
  const stat = (key: string): string => text(between(totals, `data-stat="${key}"`, '</div>').replace(/^[^>]*>/, ''))
  t.equal(stat('uptime'), 'Uptime1d 2h', 'uptime')
  t.equal(stat('connections'), 'Connections17 / 98,231', 'open / total connections')
  t.equal(stat('perSecond'), 'Req/s83.6', 'requests per second')
  t.equal(stat('requests'), 'Requests128,666', 'total requests')
  t.equal(stat('unrouted'), 'Unrouted13', 'requests no upstream answered')
  t.equal(stat('policy'), 'Policyleast-requests', 'policy')
  t.equal(stat('workers'), 'Workers4', 'workers')
  t.notMatch(totals, 'draining', 'no draining badge')
  t.match(calm, '<title>Switchyard · 1/2 up</title>', 'the tab says how many are up')

  const draining = renderDashboard(
    snapshot({
      draining: true,
      uptimeSeconds: 0,
      requests: { ...snapshot().requests, unrouted: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 } },
    }),
  )
  t.match(draining, '<span id="draining" class="badge draining">draining</span>', 'a visible draining badge')
  t.match(draining, '<title>Switchyard · 1/2 up · draining</title>', 'and in the title')
  t.match(draining, '<div data-stat="uptime"><dt>Uptime</dt><dd>0s</dd></div>', 'just started')
  t.match(draining, /<dt>Unrouted<\/dt><dd>0<\/dd>/, 'nothing unrouted, plain')
  t.equal(renderDashboard(snapshot({ uptimeSeconds: 42 })).match(/data-stat="uptime"><dt>Uptime<\/dt><dd>([^<]*)/)?.[1], '42s', 'seconds')
})

t.test('header: connections by listener and protocol, once there is more than one', async t => {
  const listeners = [
    { listener: 'http' as const, protocol: 'http/1.1' as const, open: 2 },
    { listener: 'https' as const, protocol: 'h2' as const, open: 14 },
    { listener: 'https' as const, protocol: 'http/1.1' as const, open: 1 },
  ]
  const page = renderDashboard(snapshot({ connections: { open: 17, total: 98_231, listeners } }))
  const totals = between(page, '<div id="totals">', '</div></header>')
  t.equal(
    text(between(totals, 'data-stat="connections"', '</div>').replace(/^[^>]*>/, '')),
    'Connections17 / 98,231 · http http/1.1 2 · https h2 14 · https http/1.1 1',
    'each listener and protocol with its open connections',
  )
})

t.test('chart: one polyline per upstream over the last 5 minutes', async t => {
  const html = renderDashboard(snapshot())
  const chart = between(html, '<section id="chart" class="card">', '</section>')
  t.match(chart, '<svg viewBox="0 0 299 100"', 'one x unit per second')
  const lines = [...chart.matchAll(/<polyline data-upstream="([^"]+)" stroke="([^"]+)" points="([^"]+)"\/>/g)]
  t.same(
    lines.map(m => m[1]),
    ['app-1.internal:8080', '10.0.0.2:8080'],
    'one line per upstream, in order',
  )
  t.not(lines[0]?.[2], lines[1]?.[2], 'each its own colour')
  const points = lines.map(m => (m[3] as string).split(' '))
  t.equal(points[0]?.length, 300, '300 points')
  t.same([points[0]?.[0], points[0]?.[299]], ['0,100', '299,4'], 'idle at the bottom, the peak at the top')
  t.same([points[1]?.length, points[1]?.[0], points[1]?.[149]], [150, '150,52', '299,52'], 'a shorter series lines up with now')
  t.match(chart, 'peak 20/s', 'the scale')
  t.match(chart, '<span>5m ago</span><span>now</span>', 'the time axis')
  t.equal(chart.match(/<li data-upstream=/g)?.length, 2, 'a legend entry per upstream')
  t.match(
    chart,
    `<li data-upstream="10.0.0.2:8080"><svg viewBox="0 0 12 3" aria-hidden="true"><rect width="12" height="3" rx="1.5" fill="${lines[1]?.[2]}"/></svg>10.0.0.2:8080 <small>0.0/s</small></li>`,
    'legend colour matches the line, as an SVG attribute: a style attribute would need the CSP to allow inline styles',
  )
})

t.test('self-contained and live', async t => {
  const html = renderDashboard(snapshot())
  // The one href is the empty data: icon, which spares the browser a /favicon.ico request.
  t.same(html.match(/\b(src|href)="[^"]*"/g), ['href="data:,"'], 'no external resources')
  t.notMatch(html, /https?:\/\//, 'no URLs at all')
  t.match(html, /<style>[^<]*prefers-color-scheme:dark/, 'inline CSS with a dark scheme')
  t.match(html, '<meta name="viewport" content="width=device-width,initial-scale=1">', 'sized for phones')
  t.match(html, '<div class="card wrap"><table>', 'the table scrolls inside its wrapper')
  t.match(html, "new EventSource('events')", 'the script follows the event stream')
  t.match(
    html,
    '<div id="conn" role="status" hidden>Connection to the balancer lost — reconnecting…</div>',
    'the lost-connection banner, hidden',
  )
  t.match(html, '<body data-live="connecting">', 'not live until a message comes')
})

t.test('the CSP allows the one script and the one style by hash, the same for every snapshot', async t => {
  const hash = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`
  const pages = [renderDashboard(snapshot()), renderDashboard(snapshot({ upstreams: [], draining: true }))]
  for (const html of pages) {
    t.match(DASHBOARD_CSP, `script-src ${hash(between(html, '<script>', '</script>'))};`, 'script-src names the script by its hash')
    t.match(DASHBOARD_CSP, `style-src ${hash(between(html, '<style>', '</style>'))};`, 'style-src names the style by its hash')
    t.notMatch(html, /\sstyle=|\son[a-z]+=/i, 'no style or event-handler attributes')
  }
  t.match(
    DASHBOARD_CSP,
    /^default-src 'self'; .*connect-src 'self'; .*frame-ancestors 'none'$/,
    'same origin only, EventSource included; never framed',
  )
})

/** Values pushed from callbacks, awaited one at a time in order. */
function queue<T>(): { push(value: T): void; next(): Promise<T> } {
  const values: T[] = []
  const waiting: ((value: T) => void)[] = []
  return {
    push(value) {
      const wake = waiting.shift()
      if (wake) wake(value)
      else values.push(value)
    },
    next: () => (values.length > 0 ? Promise.resolve(values.shift() as T) : new Promise(resolve => waiting.push(resolve))),
  }
}

/** Just enough of a DOM element for the page script: children, dataset, innerHTML (counted), title, hidden. */
class Element {
  children: Element[] = []
  parent: Element | undefined
  dataset: Record<string, string> = {}
  title = ''
  hidden = true
  writes = 0
  #html = ''
  constructor(readonly tagName: string) {}
  get innerHTML(): string {
    return this.#html
  }
  set innerHTML(html: string) {
    this.#html = html
    this.writes++
  }
  appendChild(child: Element): Element {
    return this.insertBefore(child, null)
  }
  insertBefore(child: Element, before: Element | null): Element {
    child.remove()
    this.children.splice(before ? this.children.indexOf(before) : this.children.length, 0, child)
    child.parent = this
    return child
  }
  remove(): void {
    this.parent?.children.splice(this.parent.children.indexOf(this), 1)
    this.parent = undefined
  }
  /** The buttons' listener: the browser test clicks them (test/browser-runtime.ts). */
  listeners: string[] = []
  addEventListener(type: string): void {
    this.listeners.push(type)
  }
  /** The admin cell's message: markup here is a string, so there is none to find. */
  querySelector(): null {
    return null
  }
  field(name: string): Element {
    const td = this.children.find(c => c.dataset.field === name)
    if (!td) throw new Error(`no ${name} cell`)
    return td
  }
}

t.test('the page script follows /events, and comes back after the balancer went away', async t => {
  // What the test server does with each /events request, in turn: stream, or refuse as an admin port in trouble would.
  const plan: ('stream' | 'refuse')[] = []
  const streams = queue<ServerResponse>()
  const server = createServer((req, res) => {
    if (req.url !== '/events') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(renderDashboard(snapshot()))
    } else if (plan.shift() === 'refuse') {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('not now\n')
    } else {
      res.writeHead(200, { 'content-type': 'text/event-stream' }).write('retry: 2000\n\n')
      streams.push(res)
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const page = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  t.teardown(() => {
    for (const source of sources) source.close()
    server.closeAllConnections()
    server.close()
  })

  // The browser side: EventSource as the HTML standard has it (dispatch each `data` block; a dropped
  // stream fires `error` and reconnects; a bad status or type fires `error` and closes for good).
  const seen = queue<string>()
  const sources: EventSource[] = []
  class EventSource {
    static readonly CONNECTING = 0
    static readonly OPEN = 1
    static readonly CLOSED = 2
    readonly url: string
    readyState = EventSource.CONNECTING
    onmessage: ((event: { data: string }) => void) | null = null
    onerror: (() => void) | null = null
    #request: ClientRequest | undefined
    constructor(url: string) {
      this.url = new URL(url, page).href
      sources.push(this)
      this.#connect()
    }
    #connect(): void {
      this.#request = get(this.url, { headers: { accept: 'text/event-stream' } }, res => {
        if (res.statusCode !== 200 || res.headers['content-type'] !== 'text/event-stream') {
          res.resume()
          this.#fail(EventSource.CLOSED)
          return
        }
        this.readyState = EventSource.OPEN
        let buffer = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          buffer += chunk
          for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
            const data = buffer
              .slice(0, end)
              .split('\n')
              .filter(l => l.startsWith('data:'))
              .map(l => l.slice(5).replace(/^ /, ''))
            buffer = buffer.slice(end + 2)
            if (data.length === 0) continue
            this.onmessage?.({ data: data.join('\n') })
            seen.push('message')
          }
        })
        res.on('end', () => this.#fail(EventSource.CONNECTING))
      })
      this.#request.on('error', () => this.#fail(EventSource.CONNECTING))
    }
    #fail(state: number): void {
      if (this.readyState === EventSource.CLOSED) return
      this.readyState = state
      this.onerror?.()
      seen.push(state === EventSource.CLOSED ? 'closed' : 'error')
      if (state === EventSource.CONNECTING) setImmediate(() => this.#connect())
    }
    close(): void {
      this.readyState = EventSource.CLOSED
      this.#request?.destroy()
    }
  }

  const html = await (await fetch(page)).text()
  const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1] ?? ''
  // The document as the server sent it: a row for an upstream that stays, and one the next message no longer has.
  const ids = {
    rows: new Element('tbody'),
    totals: new Element('div'),
    chart: new Element('section'),
    cache: new Element('section'),
    conn: new Element('div'),
  }
  const kept = ids.rows.appendChild(new Element('tr'))
  kept.dataset.upstream = 'app-1.internal:8080'
  for (const field of fieldsOf(row(html, 'app-1.internal:8080'))) kept.appendChild(new Element('td')).dataset.field = field
  const stale = ids.rows.appendChild(new Element('tr'))
  stale.dataset.upstream = 'gone:1'
  const document = {
    title: '',
    body: new Element('body'),
    getElementById: (id: string) => ids[id as keyof typeof ids],
    createElement: (tag: string) => new Element(tag),
  }
  document.body.dataset.live = 'connecting'
  const delays: number[] = []
  // The page waits 2 s before starting over; record the delay and go on at once.
  const context = createContext({
    document,
    EventSource,
    setTimeout: (fn: () => void, ms: number) => {
      delays.push(ms)
      setImmediate(fn)
    },
  })
  runInContext(script, context)

  const tbody = ids.rows
  const order = (): string[] => tbody.children.map(tr => tr.dataset.upstream as string)
  const byId = (id: string): Element => tbody.children.find(tr => tr.dataset.upstream === id) as Element

  t.equal(sources[0]?.url, `${page}events`, 'events, relative to the page')
  const first = snapshot()
  const served = renderDashboard(first)
  const stream = await streams.next()
  stream.write(`data: ${JSON.stringify(first)}\n\n`)
  t.equal(await seen.next(), 'message', 'a snapshot arrives')
  t.same(order(), ['app-1.internal:8080', '10.0.0.2:8080'], 'the stale row went, the new one came')
  t.equal(byId('app-1.internal:8080'), kept, 'the server-rendered row is updated in place')
  t.equal(stale.parent, undefined, 'the stale row is out of the document')
  for (const id of ['app-1.internal:8080', '10.0.0.2:8080']) {
    const tr = byId(id)
    t.same(
      tr.children.map(td => td.dataset.field),
      fieldsOf(row(served, id)),
      `${id}: the same cells as the server's`,
    )
    for (const td of tr.children) {
      const expected = cell(served, id, td.dataset.field as string)
      t.equal(td.innerHTML, expected.html, `${id} ${td.dataset.field}: the server's markup`)
      t.equal(td.title, unescape(expected.title ?? ''), `${id} ${td.dataset.field}: the server's tooltip, as text`)
    }
  }
  t.equal(byId('10.0.0.2:8080').dataset.state, 'down', 'the row carries its state')
  t.equal(byId('10.0.0.2:8080').field('state').title, EVIL, 'the reason on hover, as text')
  t.equal(ids.totals.innerHTML, between(served, '<div id="totals">', '</div></header>'), 'the header, as the server renders it')
  t.equal(ids.chart.innerHTML, between(served, '<section id="chart" class="card">', '</section>'), 'the chart, as the server renders it')
  t.equal(document.title, 'Switchyard · 1/2 up', 'the tab title')
  t.equal(document.body.dataset.live, 'live', 'live')
  t.equal(ids.conn.hidden, true, 'no banner')
  t.same([ids.cache.innerHTML, ids.cache.hidden], ['', true], 'no edge cache: its panel is empty and hidden')

  // The next snapshot: the down upstream gone, a new one in front, the kept one one request further, and draining.
  const app = first.upstreams[0] as UpstreamStatus
  const second = snapshot({
    draining: true,
    cache: CACHE,
    upstreams: [upstream('new:9000', { state: 'draining' }), { ...app, requests: app.requests + 1 }],
  })
  const gone = byId('10.0.0.2:8080')
  const [id, requests] = [kept.field('id'), kept.field('requests')]
  const [idWrites, requestWrites] = [id.writes, requests.writes]
  stream.write(`data: ${JSON.stringify(second)}\n\n`)
  t.equal(await seen.next(), 'message', 'the next snapshot arrives')
  t.same(order(), ['new:9000', 'app-1.internal:8080'], 'rows follow the upstreams, in order')
  t.equal(byId('app-1.internal:8080'), kept, 'the kept row is the same element')
  t.equal(gone.parent, undefined, "the removed upstream's row is out of the document")
  t.equal(requests.innerHTML, '123,457', 'a changed cell is rewritten')
  t.equal(requests.writes, requestWrites + 1, 'once')
  t.equal(id.writes, idWrites, 'an unchanged cell is left alone (a tooltip being read stays up)')
  t.equal(byId('new:9000').field('state').innerHTML, '<span class="badge state-draining">draining</span>', 'the new row is filled in')
  t.match(ids.totals.innerHTML, '<span id="draining" class="badge draining">draining</span>', 'the draining badge appears')
  t.same(
    [...ids.chart.innerHTML.matchAll(/<polyline data-upstream="([^"]+)"/g)].map(m => m[1]),
    ['new:9000', 'app-1.internal:8080'],
    'the chart follows',
  )
  t.equal(document.title, 'Switchyard · 1/2 up · draining', 'the tab title follows')
  t.equal(ids.cache.hidden, false, 'the edge cache panel shows once the cache is on')
  t.equal(
    ids.cache.innerHTML,
    between(renderDashboard(second), '<section id="cache" class="card">', '</section>'),
    'as the server renders it',
  )

  // The balancer goes away: the stream drops, then its admin port refuses the browser's own retry.
  plan.push('refuse')
  stream.end()
  t.equal(await seen.next(), 'error', 'the stream drops')
  t.equal(document.body.dataset.live, 'lost', 'lost')
  t.equal(ids.conn.hidden, false, 'the banner shows')
  t.same(delays, [], 'EventSource retries by itself while it can')
  t.equal(await seen.next(), 'closed', 'the retry is refused, and EventSource gives up')
  t.same(delays, [2000], 'the page starts over after 2 s')
  const again = await streams.next()
  t.equal(sources.length, 2, 'with a new EventSource')
  t.equal(sources[0]?.readyState, EventSource.CLOSED, 'the old one stays closed')
  t.equal(document.body.dataset.live, 'lost', 'still lost until a message comes')
  again.write(`data: ${JSON.stringify(second)}\n\n`)
  t.equal(await seen.next(), 'message', 'snapshots flow again')
  t.equal(document.body.dataset.live, 'live', 'live again')
  t.equal(ids.conn.hidden, true, 'the banner hides')
  t.same(order(), ['new:9000', 'app-1.internal:8080'], 'the rows are as they were')
})

t.test(
  'the edge cache panel: hit ratio over the last minute, bytes against the budget, entries; hidden while the cache is off',
  async t => {
    const off = renderDashboard(snapshot())
    t.match(off, '<section id="cache" class="card" hidden></section>', 'off: an empty, hidden panel')
    const on = renderDashboard(snapshot({ cache: CACHE }))
    const panel = between(on, '<section id="cache" class="card">', '</section>')
    t.match(panel, '<div data-cache="hitRatio"', 'the hit ratio')
    t.match(panel, '<dd>80.0% <small>of 100</small></dd>', 'as a share of the lookups of the last minute, BYPASS left out')
    t.match(
      panel,
      '<dd>22 MB <small>/ 67 MB</small> <meter min="0" max="67108864" value="22369621"></meter></dd>',
      'bytes against the budget, with a meter',
    )
    t.match(panel, '<div data-cache="entries" title="responses stored, every variant counted"><dt>Entries</dt><dd>1,234</dd>', 'entries')
    t.match(panel, '<dd>56</dd>', 'evictions')
    t.match(renderDashboard(snapshot({ cache: { ...CACHE, hitRatio: null } })), '<dd>– <small>of 100</small></dd>', 'no lookups: a dash')
  },
)

t.test('the admin cell: the state, its buttons, and the DNS name an address came from', async t => {
  const html = renderDashboard({ ...snapshot(), upstreams: [upstream('10.0.0.7:80', { adminState: 'drain', from: 'app.test:80' })] })
  const admin = cell(html, '10.0.0.7:80', 'admin')
  t.equal(admin.title, 'found in DNS under app.test:80', 'the tooltip names the line')
  t.match(
    admin.html,
    /^<span class="badge admin-drain">drain<\/span> <button type="button" data-set="drain" disabled>Drain<\/button><button type="button" data-set="maint">Maint/,
    'the badge, and the button of the state it is in disabled',
  )
})
