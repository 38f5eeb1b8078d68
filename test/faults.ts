// The fault suite: real backend and balancer processes on 127.0.0.1, real kills, real
// streams. It proves what docs/failure-handling.md promises: a killed backend costs no GET, and a large
// body streams through without piling up in the balancer's memory.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer, request, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { BACKEND, BALANCER, startCli, type Proc } from './fixtures/processes.js'

const backend = (t: Test, id: string, port = 0) => startCli(t, BACKEND, ['--port', String(port), '--id', id, '--quiet', '--cache-ttl', '0'])

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1]) * 1024
}

/** Polls `done` (in this process) every 10 ms until it holds; rejects after `ms`. */
async function until(done: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

t.test('GETs at 32 concurrent while a backend is killed and restarted: 0 fail, and it serves again', async t => {
  const backends = [await backend(t, 'b1'), await backend(t, 'b2'), await backend(t, 'b3')]
  const lb = await startCli(t, BALANCER, [
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--quiet',
    '--fail-timeout',
    '1s',
    ...backends.flatMap(b => ['--upstream', `127.0.0.1:${b.port}`]),
  ])
  // The loop runs until the test has seen what it waits for, bounded in count and time.
  // Each answer with the phase the test was in when it came: 'after' only once b2 was restarted.
  const served: { by: string; phase: 'before' | 'down' | 'after' }[] = []
  const failures: string[] = []
  let phase: 'before' | 'down' | 'after' = 'before'
  let stop = false
  const ends = Date.now() + 60_000
  const worker = async (): Promise<void> => {
    while (!stop && served.length + failures.length < 200_000 && Date.now() < ends) {
      const n = served.length + failures.length + 1
      try {
        const res = await fetch(`http://127.0.0.1:${lb.port}/`)
        await res.text()
        if (res.status !== 200) failures.push(`#${n}: ${res.status}`)
        else served.push({ by: res.headers.get('x-served-by') as string, phase })
      } catch (err) {
        failures.push(`#${n}: ${(err as Error).message}`)
      }
    }
  }
  const load = Promise.all(Array.from({ length: 32 }, worker))
  const victim = backends[1] as Proc
  try {
    await until(() => served.some(s => s.by === 'b2'), 'b2 to serve before the kill')
    phase = 'down'
    victim.child.kill('SIGKILL')
    await until(() => lb.stdout.some(l => /upstream 127\.0\.0\.1:\d+ marked down/.test(l)), 'the balancer to mark b2 down')
    await backend(t, 'b2', victim.port)
    phase = 'after'
    // fail_timeout is 1 s: after it, a trial request finds b2 back, whatever the machine's speed.
    await until(() => served.some(s => s.by === 'b2' && s.phase === 'after'), 'the restarted b2 to serve through the balancer')
  } finally {
    stop = true
    await load
  }
  t.same(failures, [], `all ${served.length} GETs answered 200`)
  t.ok(
    served.some(s => s.by === 'b2' && s.phase === 'before'),
    'b2 served before the kill',
  )
  t.ok(
    served.some(s => s.by === 'b2' && s.phase === 'after'),
    'the restarted b2, on its port, served again',
  )
})

t.test('300 MB up and down keep their sha256, and the balancer stays small', async t => {
  const size = 300 * 1024 * 1024
  const chunk = Buffer.alloc(1024 * 1024)
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7) % 251
  const source = () =>
    Readable.from(
      (function* () {
        for (let sent = 0; sent < size; sent += chunk.length) yield chunk
      })(),
    )
  const expected = createHash('sha256')
  for (let sent = 0; sent < size; sent += chunk.length) expected.update(chunk)
  const digest = expected.digest('hex')

  // The upstream hashes what it gets, and sends the same 300 MB back on GET.
  const upstream = createServer((req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-length': size })
      source().pipe(res)
      return
    }
    const hash = createHash('sha256')
    req.on('data', (d: Buffer) => hash.update(d))
    req.on('end', () => res.end(hash.digest('hex')))
  })
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => upstream.close())
  const lb = await startCli(t, BALANCER, [
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--quiet',
    '--upstream',
    `127.0.0.1:${(upstream.address() as AddressInfo).port}`,
  ])
  const pid = lb.child.pid as number
  const baseline = rssBytes(pid)
  let peak = baseline
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 50)
  t.teardown(() => clearInterval(sampler))

  const up = request({ host: '127.0.0.1', port: lb.port, method: 'POST', path: '/upload', agent: false })
  source().pipe(up)
  const [upRes] = (await once(up, 'response')) as [IncomingMessage]
  let upBody = ''
  for await (const d of upRes) upBody += d
  t.equal(upBody, digest, 'the upload arrived with the same sha256')

  const down = request({ host: '127.0.0.1', port: lb.port, path: '/download', agent: false })
  down.end()
  const [downRes] = (await once(down, 'response')) as [IncomingMessage]
  const hash = createHash('sha256')
  for await (const d of downRes) hash.update(d as Buffer)
  t.equal(hash.digest('hex'), digest, 'the download arrived with the same sha256')
  clearInterval(sampler)
  const growth = (peak - baseline) / 1024 / 1024
  t.ok(growth < 100, `the balancer's RSS grew by ${growth.toFixed(1)} MB (< 100 MB) for 600 MB through it`)
})
