import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import type { BackendOptions } from '../../src/config.js'
import { createBackend } from '../../src/server.js'
import { parseCookies, sessionTag, type SessionBody } from '../../src/sessions/route.js'

/** A backend on a free port, closed when the test ends; answers its base URL. */
async function start(t: Test, options: BackendOptions = {}): Promise<string> {
  const backend = createBackend(options)
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  t.teardown(() => new Promise<void>(resolve => backend.close(() => resolve())))
  return `http://127.0.0.1:${(backend.address() as AddressInfo).port}`
}

/**
 * `GET /session` with an optional Cookie header: the parsed body, the response, its raw body
 * text, and the sid its Set-Cookie carries (undefined without one).
 */
async function visit(base: string, cookie?: string): Promise<{ body: SessionBody; res: Response; raw: string; sid: string | undefined }> {
  const res = await fetch(`${base}/session`, cookie === undefined ? {} : { headers: { cookie } })
  const raw = await res.text()
  const sid = /^sid=([^;]*);/.exec(res.headers.get('set-cookie') ?? '')?.[1]
  return { body: JSON.parse(raw) as SessionBody, res, raw, sid }
}

/** The `sid=...` pair of a Set-Cookie header, to send back as a Cookie header. */
function cookieOf(res: Response): string {
  const setCookie = res.headers.get('set-cookie') ?? ''
  return setCookie.slice(0, setCookie.indexOf(';'))
}

/** The size of the JSON `/session` would send for `body`: what a HEAD's Content-Length tells. */
const lengthOf = (body: SessionBody): string => String(Buffer.byteLength(JSON.stringify(body)))

const SID = /^[A-Za-z0-9_-]{22}$/
const TAG = /^[0-9a-f]{12}$/

t.test('parseCookies reads name=value pairs and skips what is malformed', async t => {
  const cases: { header: string | undefined; expected: [string, string][]; why: string }[] = [
    { header: undefined, expected: [], why: 'no header: no cookies' },
    { header: '', expected: [], why: 'an empty header: no cookies' },
    { header: 'sid=abc', expected: [['sid', 'abc']], why: 'one pair' },
    {
      header: 'a=1; sid=abc; b=2',
      expected: [
        ['a', '1'],
        ['sid', 'abc'],
        ['b', '2'],
      ],
      why: 'several pairs, in order',
    },
    {
      header: '  a = 1 ;sid=abc;  ',
      expected: [
        ['a', '1'],
        ['sid', 'abc'],
      ],
      why: 'spaces around names and values',
    },
    {
      header: 'tok=YQ==; x=a=b',
      expected: [
        ['tok', 'YQ=='],
        ['x', 'a=b'],
      ],
      why: 'the name ends at the first =',
    },
    {
      header: 'q="quoted"; e=""; h="',
      expected: [
        ['q', 'quoted'],
        ['e', ''],
        ['h', '"'],
      ],
      why: 'one pair of quotes goes',
    },
    { header: 'junk; =nameless; ;sid=abc', expected: [['sid', 'abc']], why: 'no = or no name: skipped' },
    {
      header: 'empty=; sid=abc',
      expected: [
        ['empty', ''],
        ['sid', 'abc'],
      ],
      why: 'an empty value is a value',
    },
    { header: 'sid=first; sid=second', expected: [['sid', 'first']], why: 'a repeated name: the first wins' },
    { header: 'a=%41', expected: [['a', '%41']], why: 'values are not percent-decoded' },
  ]
  for (const { header, expected, why } of cases) {
    t.same([...parseCookies(header)], expected, why)
  }
})

t.test('GET /session: the first visit sets the sid cookie, later ones count', async t => {
  const base = await start(t, { id: 'counter' })
  const first = await visit(base)
  t.equal(first.res.status, 200, 'answered 200')
  t.equal(first.res.headers.get('content-type'), 'application/json', 'as JSON')
  t.equal(first.res.headers.get('cache-control'), 'no-store', 'no cache may keep it')
  t.match(first.body, { id: 'counter', visits: 1 }, 'the first visit, counted by this backend')
  const sid = first.sid as string
  t.match(sid, SID, 'the cookie carries a random session id')
  t.equal(first.res.headers.get('set-cookie'), `sid=${sid}; Path=/; HttpOnly; SameSite=Lax`, 'for every path, out of reach of scripts')
  t.equal(first.body.session, sessionTag(sid), 'the body shows the tag of the id')
  t.match(first.body.session, TAG, 'twelve hex digits')
  t.notOk(first.raw.includes(sid), 'the body never holds the id: a script cannot read what HttpOnly hides')
  const cookie = cookieOf(first.res)
  for (const n of [2, 3, 4]) {
    const next = await visit(base, cookie)
    t.same(next.body, { id: 'counter', visits: n, session: sessionTag(sid) }, `visit ${n} with the cookie: ${n}, same tag`)
    t.notOk(next.raw.includes(sid), `visit ${n}: no id in the body`)
    t.equal(next.res.headers.get('set-cookie'), null, `visit ${n}: no new cookie`)
  }
})

t.test('sessionTag is a short SHA-256 prefix: the same id gives the same tag, another id another', async t => {
  const sid = 'jGVe1duW2x-oHilw93nhig'
  // printf '%s' jGVe1duW2x-oHilw93nhig | sha256sum: 56e3fd250729 2323ae…
  t.equal(sessionTag(sid), '56e3fd250729', 'the first twelve hex digits of its SHA-256')
  t.not(sessionTag(sid), sessionTag('jGVe1duW2x-oHilw93nhiG'), 'one character changed: another tag')
  t.notOk(sessionTag(sid).includes(sid.slice(0, 4)), 'nothing of the id shows through')
})

t.test('GET /session with other cookies alongside finds the session', async t => {
  const base = await start(t)
  const first = await visit(base)
  const sid = first.sid as string
  const headers = [`theme=dark; sid=${sid}; sy=abc`, ` sy = "x" ;sid=${sid};junk`, `sid="${sid}"`]
  for (const [i, cookie] of headers.entries()) {
    const { body, res } = await visit(base, cookie)
    t.same([body.visits, body.session], [i + 2, sessionTag(sid)], `${JSON.stringify(cookie)}: the same session, counted`)
    t.equal(res.headers.get('set-cookie'), null, `${JSON.stringify(cookie)}: no new cookie`)
  }
})

t.test('GET /session with a sid this backend does not know starts a fresh session', async t => {
  const base = await start(t)
  for (const cookie of ['sid=AAAAAAAAAAAAAAAAAAAAAA', 'sid=', 'sid', 'other=1']) {
    const { body, res, sid } = await visit(base, cookie)
    t.equal(body.visits, 1, `${JSON.stringify(cookie)}: visits 1`)
    t.equal(res.headers.get('set-cookie'), `sid=${sid}; Path=/; HttpOnly; SameSite=Lax`, `${cookie}: a new cookie`)
    t.match(sid, SID, `${JSON.stringify(cookie)}: with a random id`)
    t.not(`sid=${sid}`, cookie, `${JSON.stringify(cookie)}: a new id, not the one sent`)
    t.equal(body.session, sessionTag(sid as string), `${JSON.stringify(cookie)}: the tag of the new id`)
  }
})

t.test("a forged sid never reads another client's session: not its tag, not a near miss", async t => {
  const base = await start(t)
  const victim = await visit(base)
  const sid = victim.sid as string
  await visit(base, `sid=${sid}`)
  const last = sid.at(-1) === 'A' ? 'B' : 'A'
  const forgeries = [
    `sid=${victim.body.session}`,
    `sid=${sid.slice(0, -1)}${last}`,
    `sid=${sid.slice(0, -1)}`,
    `sid=${sid}x`,
    `sid=${sid.slice(1)}${sid.slice(0, 1)}`,
  ]
  for (const cookie of forgeries) {
    const forged = await visit(base, cookie)
    t.equal(forged.body.visits, 1, `${cookie}: a fresh session, visit 1`)
    t.not(forged.sid, undefined, `${cookie}: a new cookie`)
    t.not(forged.sid, sid, `${cookie}: never the victim's id`)
    t.not(forged.body.session, victim.body.session, `${cookie}: never the victim's tag`)
  }
  const again = await visit(base, `sid=${sid}`)
  t.equal(again.body.visits, 3, "the victim's own count went on untouched: visit 3")
})

t.test('HEAD /session looks without counting or creating a session', async t => {
  const base = await start(t, { id: 'looker' })
  const none = await fetch(`${base}/session`, { method: 'HEAD' })
  t.equal(none.status, 200, 'without a session: 200')
  t.equal(none.headers.get('set-cookie'), null, 'without a session: no cookie, nothing created')
  t.equal(none.headers.get('content-length'), lengthOf({ id: 'looker', visits: 0, session: null }), 'visits 0, no id')
  const unknown = await fetch(`${base}/session`, { method: 'HEAD', headers: { cookie: 'sid=nope' } })
  t.equal(unknown.headers.get('set-cookie'), null, 'an unknown sid: no cookie')
  t.equal(unknown.headers.get('content-length'), lengthOf({ id: 'looker', visits: 0, session: null }), 'visits 0')
  const first = await visit(base)
  const cookie = cookieOf(first.res)
  const head = await fetch(`${base}/session`, { method: 'HEAD', headers: { cookie } })
  t.equal(head.headers.get('cache-control'), 'no-store', 'no cache may keep it')
  t.equal(
    head.headers.get('content-length'),
    lengthOf({ id: 'looker', visits: 1, session: sessionTag(first.sid as string) }),
    'a known session: its count so far',
  )
  t.equal((await visit(base, cookie)).body.visits, 2, 'the GET after the HEAD is visit 2: HEAD did not count')
})

t.test('GET /session never goes through the response cache', async t => {
  const base = await start(t, { cacheTtl: 60 })
  const a = await visit(base)
  const b = await visit(base)
  t.not(a.body.session, b.body.session, 'two cookieless clients get two sessions')
  t.equal(b.body.visits, 1, 'the second is its own first visit')
  t.equal(a.res.headers.get('x-cache'), null, 'no X-Cache: the cache played no part')
  t.equal(b.res.headers.get('x-cache'), null, 'no X-Cache on the second either (not HIT)')
})

t.test('GET /session forgets a session after 30 minutes idle, on the backend clock', async t => {
  let now = 1_000_000
  const base = await start(t, { clock: () => now })
  const first = await visit(base)
  const cookie = cookieOf(first.res)
  now += 30 * 60_000 - 1
  t.equal((await visit(base, cookie)).body.visits, 2, 'just under 30 min later: the same session')
  now += 30 * 60_000 + 1
  const expired = await visit(base, cookie)
  t.equal(expired.body.visits, 1, 'over 30 min idle: the count starts over')
  t.not(expired.body.session, first.body.session, 'in a new session')
  t.not(expired.res.headers.get('set-cookie'), null, 'with a new cookie')
})

t.test('round-robin over two backends resets the count; sticking to one keeps it', async t => {
  const backends = [await start(t, { id: 'a' }), await start(t, { id: 'b' })]
  // A cookie jar like curl's -c/-b: the client keeps the last sid it was given.
  let jar: string | undefined
  const roundRobin: [string, number][] = []
  for (let i = 0; i < 4; i++) {
    const { body, res } = await visit(backends[i % 2] as string, jar)
    if (res.headers.get('set-cookie') !== null) jar = cookieOf(res)
    roundRobin.push([body.id, body.visits])
  }
  t.same(
    roundRobin,
    [
      ['a', 1],
      ['b', 1],
      ['a', 1],
      ['b', 1],
    ],
    'each backend knows only its own sids: always visit 1',
  )
  jar = undefined
  const sticky: [string, number][] = []
  for (let i = 0; i < 4; i++) {
    const { body, res } = await visit(backends[0] as string, jar)
    if (res.headers.get('set-cookie') !== null) jar = cookieOf(res)
    sticky.push([body.id, body.visits])
  }
  t.same(
    sticky,
    [
      ['a', 1],
      ['a', 2],
      ['a', 3],
      ['a', 4],
    ],
    'one backend throughout: the count climbs',
  )
})
