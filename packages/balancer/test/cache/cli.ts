// The edge cache from the built CLI: its flags and config keys, bad values, and a purge that reaches every worker of --workers 2.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { portOf, run } from '../fixtures/cli.js'
import { startUpstream } from '../fixtures/servers.js'
import { fetch } from './fixtures/front.js'
import { tempDir } from '../fixtures/temp.js'

const adminPortOf = (line: string): number => Number(/:(\d+)\//.exec(line)?.[1])

t.test('bad cache flags exit 1 with one line naming the value', async t => {
  for (const [args, message] of [
    [['--cache', 'lots'], /^switchyard: cache: "lots" is not a size/],
    [['--cache', '1kb'], /^switchyard: cache: "1kb" is below the smallest budget/],
    [['--cache', '1mb', '--cache-lock-timeout', 'soon'], /^switchyard: cache-lock-timeout: "soon" is not a duration/],
    [['--cache', '1mb', '--cache-max-object', '0'], /^switchyard: cache-max-object: 0 would store nothing/],
  ] as const) {
    const r = run(['--port', '0', ...args])
    t.equal(await r.exit, 1, `${args.join(' ')}: exit 1`)
    t.equal(r.stderr.filter(l => l !== '').length, 1, 'one line')
    t.match(r.stderr[0], message, 'naming the value')
  }
  const help = run(['--help'])
  await help.exit
  t.match(
    help.stdout.join(' ').replace(/\s+/g, ' '),
    'Turn the edge cache on, with this memory budget (e.g. 256mb); off unless set [default: off]',
    '--help lists --cache, off by default',
  )
})

t.test('--workers 2 --cache: each worker has its own cache; a purge reaches both before it answers; the figures add up', async t => {
  const up = await startUpstream(t, 'a', (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600' })
    res.end('page\n')
  })
  // The config file's keys, the flags' names.
  const dir = tempDir(t, 'cache')
  const config = join(dir, 'switchyard.json')
  // A purge changes state: it needs the admin token.
  const tokenFile = join(dir, 'admin-token')
  writeFileSync(tokenFile, 'cache-cli-token-0123456789\n')
  const authorization = 'Bearer cache-cli-token-0123456789'
  writeFileSync(
    config,
    JSON.stringify({
      cache: '4mb',
      'cache-default-ttl': '10m',
      'cache-lock-timeout': '2s',
      'cache-stale-if-error': '30m',
      'cache-max-object': '1mb',
    }),
  )
  const r = run([
    '--config',
    config,
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--upstream',
    up.spec,
    '--quiet',
    '--workers',
    '2',
    '--admin-port',
    '0',
    '--admin-token-file',
    tokenFile,
  ])
  const port = portOf(await r.line(/listening/))
  const admin = adminPortOf(await r.line(/^switchyard admin on /))
  // Each request on a connection of its own: node:cluster deals connections round-robin, so both
  // workers get some; ask until the upstream has seen both workers' misses and both then HIT.
  const statuses: string[] = []
  for (let i = 0; i < 40 && !(up.seen.length === 2 && statuses.slice(-4).every(s => s === 'HIT')); i++) {
    statuses.push((await fetch(port, '/page')).cache as string)
  }
  t.equal(up.seen.length, 2, 'one miss per worker: each has a cache of its own')
  const status = JSON.parse((await fetch(admin, '/status.json')).body.toString())
  t.equal(status.cache.entries, 2, '/status.json adds the workers up: two entries')
  t.equal(status.cache.maxBytes, 8 * 1024 * 1024, 'and two budgets')
  t.equal(status.cache.requests.MISS, 2, 'two MISSes')
  const purge = await fetch(admin, '/cache?url=/page', { method: 'DELETE', headers: { authorization } })
  t.same([purge.status, JSON.parse(purge.body.toString())], [200, { purged: 2 }], 'the purge reached both workers before it answered')
  const after = JSON.parse((await fetch(admin, '/status.json')).body.toString())
  t.equal(after.cache.entries, 0, 'both empty')
  const metrics = (await fetch(admin, '/metrics')).body.toString()
  t.match(metrics, /^switchyard_cache_entries 0$/m, 'the metrics agree')
  t.match(metrics, /^switchyard_cache_requests_total\{status="MISS"\} 2$/m, 'MISSes summed across workers')
  t.equal(
    JSON.parse((await fetch(admin, '/cache', { method: 'DELETE', headers: { authorization } })).body.toString()).purged,
    0,
    'purging everything: 0 left',
  )
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0, 'stops cleanly')
  const off = run([
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--upstream',
    up.spec,
    '--quiet',
    '--workers',
    '2',
    '--admin-port',
    '0',
    '--admin-token-file',
    tokenFile,
  ])
  const offAdmin = adminPortOf(await off.line(/^switchyard admin on /))
  t.equal((await fetch(offAdmin, '/cache', { method: 'DELETE', headers: { authorization } })).status, 404, 'no cache in any worker: 404')
  t.equal(JSON.parse((await fetch(offAdmin, '/status.json')).body.toString()).cache, null, 'and the status says null')
  off.child.kill('SIGTERM')
  await off.exit
})
