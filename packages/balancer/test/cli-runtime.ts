// The admin API end to end, on the built CLI: drain during a request loop, maint and the checks, ready with slow start,
// adding and removing upstreams, the auth matrix, reloads and the state file.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import type { UpstreamStatus } from '../src/observe/status.js'
import { run } from './fixtures/cli.js'
import { TOKEN, bearer, enc, folder, row, setState, slowUpstream, start, status, until } from './fixtures/runtime.js'
import { fetchText, startUpstream, type Reply } from './fixtures/servers.js'

t.test('drain while a 200-request loop runs: no request fails, none reaches it after the answer, its slow request completes', async t => {
  const { tokenFile } = folder(t)
  const a = await slowUpstream(t, 'a')
  const b = await slowUpstream(t, 'b')
  const { port, admin } = await start(t, ['--admin-token-file', tokenFile, '--upstream', a.spec, '--upstream', b.spec])
  // A slow request in flight on a: /slow is held by a, answered by b at once.
  let slow: Promise<Reply> | undefined
  while (slow === undefined) {
    const p = fetchText(port, { path: '/slow' })
    const first = await Promise.race([a.held.then(() => 'a'), p.then(() => 'b')])
    if (first === 'a') slow = p
  }
  b.release()
  let sent = 0
  let sentAtAnswer = Number.POSITIVE_INFINITY
  const failures: string[] = []
  const loop = (async () => {
    for (let i = 0; i < 200; i++) {
      sent = i
      const r = await fetchText(port, { headers: { 'x-seq': String(i) } })
      if (r.status !== 200) failures.push(`${i}: ${r.status}`)
    }
  })()
  await until(
    'a few loop requests on a',
    async () => a.seqs.length,
    n => n >= 3,
  )
  const drained = await setState(admin, a.spec, 'drain')
  sentAtAnswer = sent
  t.equal(drained.status, 200, 'the drain is answered 200')
  const object = JSON.parse(drained.body) as UpstreamStatus
  t.same([object.id, object.adminState], [a.spec, 'drain'], 'with the upstream object in its new state')
  await loop
  t.same(failures, [], 'no request of the 200 failed')
  t.ok(
    a.seqs.every(seq => seq <= sentAtAnswer),
    `a got no request sent after the answer (its last: ${a.seqs.at(-1)}, sent at the answer: ${sentAtAnswer})`,
  )
  t.ok(b.seqs.includes(199), 'the loop went on, on b')
  a.release()
  const done = await (slow as Promise<Reply>)
  t.same([done.status, done.body], [200, 'slow from a\n'], 'the slow request in flight on a completed')
  const s = await status(admin)
  t.same([row(s, a.spec)?.adminState, row(s, a.spec)?.state], ['drain', 'up'], 'status: drain, and up by health')
  const metrics = (await fetchText(admin, { path: '/metrics' })).body
  t.match(metrics, `switchyard_upstream_admin_state{upstream="${a.spec}",state="drain"} 1`, 'the metric shows drain')
  t.match(metrics, `switchyard_upstream_admin_state{upstream="${a.spec}",state="ready"} 0`, 'and not ready')
})

t.test('maint stops the health checks; ready starts them again, with slow start', async t => {
  const { tokenFile } = folder(t)
  const checks = { a: 0, b: 0 }
  const counting = (name: 'a' | 'b') => (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/healthz') checks[name]++
    res.end(`hello from ${name}\n`)
  }
  const a = await startUpstream(t, 'a', counting('a'))
  const b = await startUpstream(t, 'b', counting('b'))
  const args = [
    '--admin-token-file',
    tokenFile,
    '--health-path',
    '/healthz',
    '--health-interval',
    '50ms',
    '--upstream',
    `${a.spec} slow_start=30s`,
    '--upstream',
    b.spec,
  ]
  const { port, admin } = await start(t, args)
  await until(
    'checks of a',
    async () => checks.a,
    n => n >= 2,
  )
  t.equal((await setState(admin, a.spec, 'maint')).status, 200, 'maint: 200')
  const atMaint = checks.a
  const bAtMaint = checks.b
  await until(
    'five more checks of b',
    async () => checks.b,
    n => n >= bAtMaint + 5,
  )
  // A check already on its way when maint began may still arrive: one at most.
  t.ok(checks.a <= atMaint + 1, `a's check count stopped rising (${atMaint} at maint, ${checks.a} after five rounds)`)
  const s = await status(admin)
  t.same([row(s, a.spec)?.state, row(s, a.spec)?.adminState], ['down', 'maint'], 'status: down, in maint')
  t.match(row(s, a.spec)?.reason, /^in maintenance \(admin API\)/, 'and why')
  for (let i = 0; i < 6; i++) t.equal((await fetchText(port)).headers['x-served-by'], 'b', `request ${i + 1} goes to b`)

  const ready = await setState(admin, a.spec, 'ready')
  t.equal(ready.status, 200, 'ready: 200')
  const object = JSON.parse(ready.body) as UpstreamStatus
  t.ok(object.effectiveWeight < object.weight, `slow start: effective weight ${object.effectiveWeight} below ${object.weight}`)
  t.match(object.reason, /^slow start: weight/, 'and why')
  await until(
    'checks of a again',
    async () => checks.a,
    n => n >= atMaint + 3,
  )
  await until(
    'traffic on a again',
    async () => (await fetchText(port)).headers['x-served-by'],
    by => by === 'a',
  )
  t.pass('traffic comes back to a')
})

t.test('add and remove through the API: traffic follows, a removed upstream finishes its request', async t => {
  const { tokenFile } = folder(t)
  const a = await startUpstream(t, 'a')
  const c = await slowUpstream(t, 'c')
  const { port, admin } = await start(t, ['--admin-token-file', tokenFile, '--upstream', a.spec])
  const post = (body: unknown) => fetchText(admin, { method: 'POST', path: '/upstreams', body: JSON.stringify(body), headers: bearer })
  const added = await post({ upstream: `${c.spec} weight=2` })
  t.same([added.status, (JSON.parse(added.body) as UpstreamStatus).weight], [201, 2], 'added: 201 with its object')
  t.equal((await post({ upstream: c.spec })).status, 409, 'again: 409')
  t.equal((await post({ address: a.spec, weight: 3 })).status, 409, 'an object for one that exists: 409')
  t.equal((await post({ upstream: 'not a line' })).status, 400, 'a bad line: 400')
  await until(
    'traffic on c',
    async () => (await fetchText(port)).headers['x-served-by'],
    by => by === 'c',
  )
  let slow: Promise<Reply> | undefined
  while (slow === undefined) {
    const p = fetchText(port, { path: '/slow' })
    const first = await Promise.race([c.held.then(() => 'c'), p.then(() => 'a')])
    if (first === 'c') slow = p
  }
  const removed = await fetchText(admin, { method: 'DELETE', path: `/upstreams/${enc(c.spec)}`, headers: bearer })
  t.same([removed.status, (JSON.parse(removed.body) as UpstreamStatus).state], [202, 'draining'], 'removed: 202, draining')
  const seen = c.seen.length
  for (let i = 0; i < 6; i++) t.equal((await fetchText(port)).headers['x-served-by'], 'a', `request ${i + 1} after the removal goes to a`)
  t.equal(c.seen.length, seen, 'c got no new request')
  t.equal(row(await status(admin), c.spec)?.state, 'draining', 'shown draining while its request is in flight')
  c.release()
  t.equal((await (slow as Promise<Reply>)).body, 'slow from c\n', 'its request in flight completed')
  await until(
    'c gone from the status',
    () => status(admin),
    s => row(s, c.spec) === undefined,
  )
  t.equal(
    (await fetchText(admin, { method: 'DELETE', path: `/upstreams/${enc(c.spec)}`, headers: bearer })).status,
    404,
    'an unknown id: 404',
  )
  const list = JSON.parse((await fetchText(admin, { path: '/upstreams' })).body) as UpstreamStatus[]
  t.same(
    list.map(u => u.id),
    [a.spec],
    'GET /upstreams lists what is left',
  )
})

t.test('auth: no token 403, a wrong one 401, the right one 200; a token on the command line is refused', async t => {
  const a = await startUpstream(t, 'a')
  const open = await start(t, ['--upstream', a.spec])
  const none = await setState(open.admin, a.spec, 'drain')
  t.same(
    [none.status, none.body.split(';')[0]],
    [403, '403 Forbidden: no admin token is set, so nothing may be changed'],
    'no token configured: 403',
  )
  t.match(none.body, /--admin-token-file FILE or the SWITCHYARD_ADMIN_TOKEN environment variable/, 'saying how to set one')
  t.equal((await fetchText(open.admin, { path: '/upstreams' })).status, 200, 'reads stay open')

  const { tokenFile } = folder(t)
  const closed = await start(t, ['--admin-token-file', tokenFile, '--upstream', a.spec])
  const wrong = await setState(closed.admin, a.spec, 'drain', { authorization: 'Bearer not-the-token-at-all-000' })
  t.same([wrong.status, wrong.headers['www-authenticate']], [401, 'Bearer realm="switchyard-admin"'], 'a wrong token: 401')
  t.equal((await setState(closed.admin, a.spec, 'drain', {})).status, 401, 'no token: 401')
  await closed.r.line(/admin: refused POST/)
  t.equal(closed.r.stdout.filter(l => l.includes('admin: refused')).length, 1, 'two failures from one address: one log line')
  t.notOk(closed.r.stdout.join('\n').includes('not-the-token'), 'the tried token is not logged')
  t.equal((await setState(closed.admin, a.spec, 'drain')).status, 200, 'the right token: 200')

  process.env.SWITCHYARD_ADMIN_TOKEN = TOKEN
  const env = await start(t, ['--upstream', a.spec]).finally(() => delete process.env.SWITCHYARD_ADMIN_TOKEN)
  t.equal((await setState(env.admin, a.spec, 'maint')).status, 200, 'the token from SWITCHYARD_ADMIN_TOKEN works')

  const refused = run(['--admin-token', 'secret-on-the-command-line', '--upstream', a.spec])
  t.equal(await refused.exit, 1, 'a token on the command line: exit 1')
  t.same(
    refused.stderr.filter(Boolean),
    [
      'switchyard: admin-token: a token on the command line shows in ps and in shell history; put it in a file for --admin-token-file, or in SWITCHYARD_ADMIN_TOKEN',
    ],
    'one line, without the token',
  )
})

t.test('reload: the config file is the truth again for the list, admin states stay; the state file survives a restart', async t => {
  const { dir, tokenFile } = folder(t)
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const c = await startUpstream(t, 'c')
  const config = join(dir, 'config.json')
  const stateFile = join(dir, 'state.json')
  writeFileSync(config, JSON.stringify({ upstream: [a.spec, b.spec] }))
  const args = ['--config', config, '--admin-token-file', tokenFile, '--state-file', stateFile]
  const first = await start(t, args)
  t.equal(
    (await fetchText(first.admin, { method: 'POST', path: '/upstreams', body: JSON.stringify({ upstream: c.spec }), headers: bearer }))
      .status,
    201,
    'c added',
  )
  t.equal((await fetchText(first.admin, { method: 'DELETE', path: `/upstreams/${enc(b.spec)}`, headers: bearer })).status, 202, 'b removed')
  t.equal((await setState(first.admin, a.spec, 'drain')).status, 200, 'a drained')
  const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, unknown>
  t.same([saved.added, saved.removed, saved.adminStates], [[c.spec], [b.spec], { [a.spec]: 'drain' }], 'the state file holds the changes')

  // A restart with the same state file: the changes hold.
  first.r.child.kill('SIGKILL')
  await first.r.exit
  const second = await start(t, args)
  let s = await status(second.admin)
  t.same(
    s.upstreams.map(u => [u.id, u.adminState]),
    [
      [a.spec, 'drain'],
      [c.spec, 'ready'],
    ],
    'after a restart: b still removed, c still added, a still drained',
  )
  // SIGHUP: the file's list again; a keeps its drain.
  const reloaded = second.r.line(/reloaded/)
  second.r.child.kill('SIGHUP')
  await reloaded
  s = await until(
    'b back, c gone',
    () => status(second.admin),
    x => row(x, b.spec) !== undefined && row(x, c.spec) === undefined,
  )
  t.same(
    s.upstreams.map(u => [u.id, u.adminState]),
    [
      [a.spec, 'drain'],
      [b.spec, 'ready'],
    ],
    'after SIGHUP: the file list, with the admin state of a kept',
  )
  const after = await until(
    'the state file saved',
    async () => JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, unknown>,
    x => (x.added as unknown[]).length === 0,
  )
  t.same([after.added, after.removed, after.adminStates], [[], [], { [a.spec]: 'drain' }], 'and the state file says so')
  // A state file that can no longer be written: the reload still applies, and says so.
  rmSync(stateFile)
  mkdirSync(stateFile)
  second.r.child.kill('SIGHUP')
  await second.r.line(/^switchyard: state file not written: EISDIR$/)
  t.pass('a failed save after a reload is one line')
})

t.test('drain keeps the clients a sticky cookie pins there, as HAProxy does; maint does not', async t => {
  const { tokenFile } = folder(t)
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const args = [
    '--admin-token-file',
    tokenFile,
    '--sticky-cookie',
    'sy',
    '--sticky-secret',
    'a-shared-secret',
    '--upstream',
    a.spec,
    '--upstream',
    b.spec,
  ]
  const { port, admin } = await start(t, args)
  // Fresh clients alternate: one of the first two is pinned to a.
  let cookie: string | undefined
  while (cookie === undefined) {
    const r = await fetchText(port)
    if (r.headers['x-served-by'] === 'a') cookie = String(r.headers['set-cookie']?.[0]).split(';')[0]
  }
  t.equal((await setState(admin, a.spec, 'drain')).status, 200, 'a drained')
  for (let i = 0; i < 3; i++) {
    t.equal(
      (await fetchText(port, { headers: { cookie: cookie as string } })).headers['x-served-by'],
      'a',
      `pinned request ${i + 1} still goes to a`,
    )
    t.equal((await fetchText(port)).headers['x-served-by'], 'b', `new client ${i + 1} goes to b`)
  }
  t.equal((await setState(admin, a.spec, 'maint')).status, 200, 'a in maint')
  const moved = await fetchText(port, { headers: { cookie: cookie as string } })
  t.equal(moved.headers['x-served-by'], 'b', 'in maint, the pinned client goes elsewhere')
  t.match(moved.headers['set-cookie'], [/^sy=/], 'and is pinned anew')
})
