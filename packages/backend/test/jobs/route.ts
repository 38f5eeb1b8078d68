import { once } from 'node:events'
import { createServer } from 'node:http'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { BodyBudget } from '../../src/body-budget.js'
import type { BackendOptions } from '../../src/config.js'
import { MemoryJobQueue } from '../../src/jobs/memory-queue.js'
import { report } from '../../src/jobs/report.js'
import { postJob } from '../../src/jobs/route.js'
import type { JobView } from '../../src/jobs/types.js'
import { createBackend } from '../../src/server.js'
import { until } from '../fixtures/log.js'

/** An in-memory backend on a free port, closed when the test ends; answers its base URL. */
async function start(t: Test, options: BackendOptions = {}): Promise<string> {
  const backend = createBackend(options)
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  t.teardown(() => new Promise<void>(resolve => backend.close(() => resolve())))
  return `http://127.0.0.1:${(backend.address() as AddressInfo).port}`
}

const JSON_TYPE = { 'content-type': 'application/json' }

async function post(base: string, body: string, headers: Record<string, string> = JSON_TYPE) {
  const res = await fetch(`${base}/jobs`, { method: 'POST', headers, body })
  return { status: res.status, location: res.headers.get('location'), type: res.headers.get('content-type'), text: await res.text() }
}

t.test('POST /jobs answers 202, Location and the job; GET /jobs/<id> follows it to completed', async t => {
  const base = await start(t)
  const res = await post(base, '{"type":"report","ms":30}')
  t.equal(res.status, 202, '202 Accepted')
  const job = JSON.parse(res.text) as JobView
  t.equal(res.location, `/jobs/${job.id}`, 'Location names the job')
  t.equal(res.type, 'application/json', 'as JSON')
  t.match(job, { type: 'report', data: { ms: 30 }, maxAttempts: 4 }, 'the job as posted')
  const read = async () => (await fetch(`${base}${res.location}`)).json() as Promise<JobView>
  const finished = await until(read, j => j.state === 'completed', 10_000, 'completion')
  t.match(finished, { id: job.id, progress: 100, result: { sleptMs: 30 }, attempts: 1 }, 'completed with its result')
  const head = await fetch(`${base}${res.location}`, { method: 'HEAD' })
  t.equal(head.status, 200, 'HEAD /jobs/<id> answers too')
  const charset = await post(base, '{"type":"report","ms":0}', { 'content-type': 'application/json; charset=utf-8' })
  t.equal(charset.status, 202, 'a charset parameter is fine')
  const bare = await fetch(`${base}/jobs`, { method: 'POST', body: new Blob(['{"type":"report","ms":0}']) })
  t.equal(bare.status, 202, 'so is no Content-Type at all')
})

t.test('bad bodies get 400 with one line, other types 415, unknown ids 404, other methods 405', async t => {
  const base = await start(t)
  const bad: Array<[string, RegExp]> = [
    ['not json', /^Bad Request: the body is not JSON; send a job like \{"type":"report","ms":2000\}$/],
    ['[1,2]', /^Bad Request: the body is not a JSON object/],
    ['null', /^Bad Request: the body is not a JSON object/],
    ['"report"', /^Bad Request: the body is not a JSON object/],
    ['{"ms":10}', /^Bad Request: type: missing is not a job type \(report\)$/],
    ['{"type":"pdf"}', /^Bad Request: type: "pdf" is not a job type \(report\)$/],
    ['{"type":"toString"}', /^Bad Request: type: "toString" is not a job type/],
    ['{"type":"report"}', /^Bad Request: ms: missing is not a whole number from 0 to 60000$/],
    ['{"type":"report","ms":60001}', /^Bad Request: ms: 60001 /],
    ['{"type":"report","ms":5,"x":1}', /^Bad Request: report takes "type" and "ms" only, not "x"$/],
  ]
  for (const [body, line] of bad) {
    const res = await post(base, body)
    t.equal(res.status, 400, `${body}: 400`)
    t.match(res.text, line, `${body}: ${res.text}`)
    t.notMatch(res.text, /\n/, `${body}: one line`)
  }
  const form = await post(base, 'type=report', { 'content-type': 'application/x-www-form-urlencoded' })
  t.same(
    [form.status, form.text],
    [415, 'Unsupported Media Type: POST /jobs takes application/json, not "application/x-www-form-urlencoded"'],
    'a form: 415',
  )
  const big = await post(base, JSON.stringify({ type: 'report', ms: 1, pad: 'x'.repeat(20_000) }))
  t.equal(big.status, 413, 'over 16 KiB: 413')
  for (const path of ['/jobs/nope', '/jobs/00000000-0000-4000-8000-000000000000', '/jobs/', '/jobs/a/b']) {
    const res = await fetch(`${base}${path}`)
    t.equal(res.status, 404, `${path}: 404`)
    t.match(await res.text(), /^Not Found: no job /, `${path}: one line`)
  }
  const getJobs = await fetch(`${base}/jobs`)
  t.same([getJobs.status, getJobs.headers.get('allow')], [405, 'POST'], 'GET /jobs: 405, Allow: POST')
  const postJobId = await fetch(`${base}/jobs/00000000-0000-4000-8000-000000000000`, { method: 'POST' })
  t.same([postJobId.status, postJobId.headers.get('allow')], [405, 'GET, HEAD'], 'POST /jobs/<id>: 405, Allow: GET, HEAD')
})

t.test('a body past the bytes all requests may hold gets 503, and one cut short gets 400', async t => {
  const base = await start(t, { maxBodyBytesTotal: 64 })
  const res = await post(base, JSON.stringify({ type: 'report', ms: 1, pad: 'x'.repeat(100) }))
  t.equal(res.status, 503, '503')
  t.match(res.text, /^Service Unavailable: request bodies held at once would pass 64 bytes/, 'says why')

  // The cut-short body: answered through postJob on a server of its own, to read the answer
  // a client that left never reads. The client goes once the server has the request.
  const queue = new MemoryJobQueue({ types: { report }, concurrency: 1, backoff: 1, worker: () => 'w' })
  let leave: () => void = () => {}
  const answered = new Promise<string>(resolve => {
    const server = createServer((req, res2) => {
      void postJob(req, new BodyBudget(1024).open(), queue, { report }, 1024).then(r => {
        resolve(`${r.status} ${r.body.toString()}`)
        res2.end()
      })
      leave()
    })
    server.listen(0, '127.0.0.1', () => {
      const socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
      socket.on('error', () => {})
      socket.write('POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"type":')
      leave = () => socket.destroy()
    })
    t.teardown(() => {
      server.closeAllConnections()
      server.close()
    })
  })
  t.match(await answered, /^400 Bad Request: request body incomplete: /, 'a body cut short: 400')
})

t.test('the in-memory queue full: 503 with one line', async t => {
  const queue = new MemoryJobQueue({ types: { report }, concurrency: 1, backoff: 1, worker: () => 'w', maxPending: 0 })
  const server = createServer((req, res) => {
    void postJob(req, new BodyBudget(1024).open(), queue, { report }, 1024).then(r => res.writeHead(r.status, r.headers).end(r.body))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  const res = await post(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, '{"type":"report","ms":0}')
  t.same([res.status, res.text], [503, 'Service Unavailable: the job queue holds 0 unfinished jobs; try again shortly'], '503, queue full')
})
