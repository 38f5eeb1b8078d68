import CachePolicy from 'http-cache-semantics'
import t from 'tap'
import { directives, judge, servableOnError, standing, type PolicyRequest } from '../../src/cache/rules.js'

const req: PolicyRequest = { method: 'GET', url: '/', headers: { host: 'h' } }
const settings = { defaultTtl: 0, staleIfError: 3600 }

t.test(
  'http-cache-semantics 4.3 still forces revalidation of a fresh must-revalidate response: the cache does not ask evaluateRequest',
  async t => {
    // The quirk the issue names: since 4.2.0, evaluateRequest() wants a revalidation for any
    // must-revalidate response, fresh or not. The cache reads freshness from maxAge() and age()
    // instead (rules.ts standing()). If this fails, the library fixed it, and the workaround may go.
    const policy = new CachePolicy(req, { status: 200, headers: { 'cache-control': 'max-age=60, must-revalidate' } }, { shared: true })
    t.notOk(policy.stale(), 'the response is fresh')
    t.ok(policy.evaluateRequest(req).revalidation, 'yet evaluateRequest asks for a revalidation')
    const verdict = judge(req, 200, { 'cache-control': 'max-age=60, must-revalidate' }, settings)
    t.ok(verdict.store && standing(verdict.freshness, 0) === 'fresh', 'the cache calls it fresh')
    t.ok(verdict.store && !verdict.freshness.mayServeStale, 'and never serves it stale')
    // The second quirk: proxy-revalidate reads as "never fresh" in a shared cache.
    const pr = new CachePolicy(req, { status: 200, headers: { 'cache-control': 'max-age=60, proxy-revalidate' } }, { shared: true })
    t.equal(pr.maxAge(), 0, 'the library gives proxy-revalidate no freshness')
    const v = judge(req, 200, { 'cache-control': 'public, max-age=60, proxy-revalidate' }, settings)
    t.ok(v.store && v.freshness.lifetime === 60 && !v.freshness.mayServeStale, 'the cache gives it its max-age, and no stale serving')
  },
)

t.test('judge: the reasons a response is not stored', async t => {
  const cases: [string, number, Record<string, string>, RegExp, PolicyRequest?][] = [
    ['status', 302, { 'cache-control': 'max-age=60' }, /status 302/],
    ['cookie', 200, { 'cache-control': 'public, max-age=60', 'set-cookie': 'a=1' }, /cookie/],
    ['no-store', 200, { 'cache-control': 'No-Store' }, /no-store/],
    ['pragma', 200, { pragma: 'no-cache' }, /Pragma/],
    ['vary', 200, { 'cache-control': 'max-age=60', vary: 'accept, *' }, /Vary: \*/],
    ['no freshness', 200, {}, /states no freshness/],
    ['stale already', 200, { expires: 'Thu, 01 Jan 1970 00:00:00 GMT' }, /stale already/],
    ['authorization', 200, { 'cache-control': 'max-age=60' }, /Authorization/, { ...req, headers: { host: 'h', authorization: 'x' } }],
    ['not storable', 200, { 'cache-control': 'max-age=60' }, /RFC 9111 §3/, { ...req, method: 'PATCH' }],
  ]
  for (const [what, status, headers, why, r] of cases) {
    const v = judge(r ?? req, status, headers, settings)
    t.ok(!v.store && why.test(v.reason), `${what}: ${v.store ? 'stored' : v.reason}`)
  }
  const s = judge(req, 200, { 'cache-control': 's-maxage=30, max-age=5, stale-while-revalidate=7, stale-if-error=9' }, settings)
  t.ok(s.store, 'stored')
  if (s.store)
    t.same(
      s.freshness,
      { lifetime: 30, staleWhileRevalidate: 7, staleIfError: 9, mayServeStale: false },
      's-maxage wins and forbids serving stale',
    )
  const auth = judge(
    { ...req, headers: { host: 'h', authorization: 'x' } },
    200,
    { 'cache-control': 'max-age=60, must-revalidate' },
    settings,
  )
  t.ok(auth.store, 'must-revalidate lets a response to Authorization be stored (RFC 9111 §3.5)')
})

t.test('standing and stale-if-error', async t => {
  const f = { lifetime: 10, staleWhileRevalidate: 5, staleIfError: 20, mayServeStale: true }
  t.equal(standing(f, 9.9), 'fresh', 'fresh within the lifetime')
  t.equal(standing(f, 12), 'stale-while-revalidate', 'then within stale-while-revalidate')
  t.equal(standing(f, 15), 'stale', 'then stale')
  t.equal(standing({ ...f, mayServeStale: false }, 12), 'stale', 'never stale-while-revalidate when stale serving is forbidden')
  t.ok(servableOnError(f, 29), 'servable on error within stale-if-error')
  t.notOk(servableOnError(f, 30), 'not past it')
})

t.test('directives', async t => {
  t.same(
    [...directives(['max-age="5"', ' No-Cache ,,x=']).entries()],
    [
      ['max-age', '5'],
      ['no-cache', true],
      ['x', ''],
    ],
    'names lower-cased, quotes dropped, empty parts skipped',
  )
  t.equal(directives(undefined).size, 0, 'none')
})
