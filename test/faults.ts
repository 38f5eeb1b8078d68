// The fault suite: real backend and balancer processes on 127.0.0.1, real kills, real
// streams. It proves what the README promises: a killed backend costs no GET, and a large
// body streams through without piling up in the balancer's memory.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer, request, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { BACKEND, BALANCER, startCli, type Proc } from './fixtures/processes.js'

const backend = (t: Test, id: string, port = 0) =>
  startCli(t, BACKEND, ['--port', String(port), '--id', id, '--quiet', '--cache-ttl', '0'])

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1]) * 1024
}

t.test('5,000 GETs at 32 concurrent with a backend killed and restarted: 0 fail', async t => {
  const backends = [await backend(t, 'b1'), await backend(t, 'b2'), await backend(t, 'b3')]
  const lb = await startCli(t, BALANCER, [
    '--port', '0', '--host', '127.0.0.1', '--quiet', '--fail-timeout', '1s',
    ...backends.flatMap(b => ['--upstream', `127.0.0.1:${b.port}`]),
  ])
  const total = 5000
  const counts = { before: new Map<string, number>(), after: new Map<string, number>() }
  const failures: string[] = []
  let sent = 0
  let phase: 'before' | 'after' = 'before'
  const victim = backends[1] as Proc
  let restarted: Proc | undefined
  const worker = async (): Promise<void> => {
    while (sent < total) {
      const n = ++sent
      if (n === 1500) victim.child.kill('SIGKILL')
      if (n === 3000) {
        restarted = await backend(t, 'b2', victim.port)
        // fail_timeout is 1 s: past it, the restarted backend is back in rotation.
        setTimeout(() => (phase = 'after'), 1100)
      }
      try {
        const res = await fetch(`http://127.0.0.1:${lb.port}/`)
        await res.text()
        if (res.status !== 200) failures.push(`#${n}: ${res.status}`)
        const by = res.headers.get('x-served-by') as string
        counts[phase].set(by, (counts[phase].get(by) ?? 0) + 1)
      } catch (err) {
        failures.push(`#${n}: ${(err as Error).message}`)
      }
    }
  }
  await Promise.all(Array.from({ length: 32 }, worker))
  t.same(failures, [], `all ${total} GETs answered 200`)
  t.ok((counts.before.get('b2') ?? 0) > 0, `b2 served before the kill (${JSON.stringify([...counts.before])})`)
  t.ok((counts.after.get('b2') ?? 0) > 0, `the restarted b2 served again (${JSON.stringify([...counts.after])})`)
  t.ok(restarted !== undefined, 'b2 was restarted on its port')
  t.ok(lb.stdout.some(l => /upstream 127\.0\.0\.1:\d+ marked down/.test(l)), 'the kill was noticed and logged')
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
    '--port', '0', '--host', '127.0.0.1', '--quiet',
    '--upstream', `127.0.0.1:${(upstream.address() as AddressInfo).port}`,
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
