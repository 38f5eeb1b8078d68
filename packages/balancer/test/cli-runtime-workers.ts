// --workers 2 and the admin API: one call reaches every worker before it is answered.
import t from 'tap'
import { bearer, enc, folder, row, setState, start, status, until } from './fixtures/runtime.js'
import { fetchText, startUpstream } from './fixtures/servers.js'

t.test('--workers 2: one drain call takes the upstream out of both workers; an added one reaches both', async t => {
  const { tokenFile } = folder(t)
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const c = await startUpstream(t, 'c')
  const { port, admin } = await start(t, ['--workers', '2', '--admin-token-file', tokenFile, '--upstream', a.spec, '--upstream', b.spec])
  // Both workers serve a: fresh connections are dealt to them in turn.
  await until(
    'both workers counted',
    () => status(admin),
    s => s.processes.length === 2,
  )
  const drained = await setState(admin, a.spec, 'drain')
  t.equal(drained.status, 200, 'drain: 200')
  const seen = a.seen.length
  // Right after the answer, with no wait: every worker already has it.
  for (let i = 0; i < 20; i++) t.equal((await fetchText(port)).headers['x-served-by'], 'b', `request ${i + 1} goes to b`)
  t.equal(a.seen.length, seen, 'a got nothing from either worker')
  const s = await until(
    'both workers served',
    () => status(admin),
    x => x.processes.every(p => p.requests >= 5),
  )
  t.equal(row(s, a.spec)?.adminState, 'drain', 'the status says drain')

  const added = await fetchText(admin, { method: 'POST', path: '/upstreams', body: JSON.stringify({ upstream: c.spec }), headers: bearer })
  t.equal(added.status, 201, 'added: 201')
  t.equal((await setState(admin, b.spec, 'maint')).status, 200, 'b in maint')
  for (let i = 0; i < 10; i++) t.equal((await fetchText(port)).headers['x-served-by'], 'c', `request ${i + 1} goes to c, on either worker`)
  const removed = await fetchText(admin, { method: 'DELETE', path: `/upstreams/${enc(c.spec)}`, headers: bearer })
  t.equal(removed.status, 202, 'removed: 202')
  for (let i = 0; i < 4; i++) t.equal((await fetchText(port)).status, 503, `a drained, b in maint, c removed: request ${i + 1} gets 503`)
})
