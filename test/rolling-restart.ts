// The rolling restart of docs/deploying.md ("Deploying behind Switchyard"), run as written: its shell block, with curl, against a real
// balancer in front of two real switchyard-backend processes that restart_backend kills and starts again, while a client
// loop sends requests the whole time. No request may fail.
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { BACKEND, BALANCER, LISTENING, startCli, type Proc } from './fixtures/processes.js'
import { tempDir } from '../packages/balancer/test/fixtures/temp.js'

const ADMIN = /^switchyard admin on http:\/\/[^:]+:(\d+)\//
const TOKEN = 'rolling-restart-token-0123456789abcdef'

/** The block of docs/deploying.md, between its markers. */
function readmeBlock(): string {
  const readme = readFileSync(new URL('../docs/deploying.md', import.meta.url), 'utf8')
  const m = /<!-- rolling-restart:begin -->\n```sh\n([\s\S]*?)```\n<!-- rolling-restart:end -->/.exec(readme)
  if (m === null) throw new Error('docs/deploying.md has no rolling-restart block')
  return m[1] as string
}

/** One GET through the balancer over a fresh connection: its status, or the error's code. */
function get(port: number): Promise<string> {
  return new Promise(resolve => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, res => {
      res.resume()
      res.on('end', () => resolve(String(res.statusCode)))
      res.on('error', (err: NodeJS.ErrnoException) => resolve(String(err.code)))
    })
    req.on('error', (err: NodeJS.ErrnoException) => resolve(String(err.code)))
    req.end()
  })
}

t.test('the rolling restart of docs/deploying.md loses no request', async t => {
  const dir = tempDir(t, 'rolling')
  const tokenFile = join(dir, 'admin-token')
  writeFileSync(tokenFile, `${TOKEN}\n`)
  const backends = new Map<string, Proc>()
  const startBackend = async (port: number, id: string): Promise<Proc> => {
    const p = await startCli(t, BACKEND, ['--port', String(port), '--id', id, '--quiet'])
    backends.set(`127.0.0.1:${p.port}`, p)
    return p
  }
  const first = await startBackend(0, 'b1')
  const second = await startBackend(0, 'b2')
  const ids = [`127.0.0.1:${first.port}`, `127.0.0.1:${second.port}`]
  const lb = await startCli(
    t,
    BALANCER,
    [
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--admin-port',
      '0',
      '--quiet',
      '--admin-token-file',
      tokenFile,
      '--upstream',
      ids[0] as string,
      '--upstream',
      ids[1] as string,
    ],
    [LISTENING, ADMIN],
  )
  const [port, adminPort] = lb.ports as [number, number]

  // restart_backend calls back here: the backend is killed (SIGTERM, which drains it) and started again on its port.
  const restarted: string[] = []
  const control = createServer((req, res) => {
    const id = new URL(req.url as string, 'http://x').searchParams.get('id') as string
    const old = backends.get(id) as Proc
    old.child.kill('SIGTERM')
    void once(old.child, 'exit')
      .then(() => startBackend(Number(id.split(':')[1]), `${id}-new`))
      .then(() => {
        restarted.push(id)
        res.end('restarted\n')
      })
  })
  control.listen(0, '127.0.0.1')
  await once(control, 'listening')
  t.teardown(() => control.close())
  const controlPort = (control.address() as AddressInfo).port

  // The block, with its addresses and token file replaced by this test's, and restart_backend defined.
  const script = [
    `restart_backend() { curl -fsS "http://127.0.0.1:${controlPort}/?id=$1" > /dev/null; }`,
    readmeBlock()
      .replace('http://127.0.0.1:9090', `http://127.0.0.1:${adminPort}`)
      .replace('/etc/switchyard/admin-token', tokenFile)
      .replace('127.0.0.1:5000 127.0.0.1:5001', ids.join(' ')),
  ].join('\n')

  let done = false
  const outcomes = new Map<string, number>()
  const loop = (async () => {
    for (let i = 0; i < 100_000 && !done; i++) {
      const outcome = await get(port)
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
    }
  })()
  const ran = await new Promise<{ code: number; stderr: string }>(resolve => {
    execFile('bash', ['-euo', 'pipefail', '-c', script], { timeout: 60_000 }, (err, _stdout, stderr) =>
      resolve({ code: err === null ? 0 : Number(err.code), stderr }),
    )
  })
  done = true
  await loop
  t.same(ran.code, 0, `the docs/deploying.md block ran to the end ${ran.stderr}`)
  t.same(restarted, ids, 'both backends were restarted, one after the other')
  t.same([...outcomes.keys()], ['200'], `every request got 200 (${[...outcomes].map(([k, n]) => `${k}: ${n}`).join(', ')})`)
  t.ok((outcomes.get('200') ?? 0) >= 20, 'and the loop ran throughout')
})
