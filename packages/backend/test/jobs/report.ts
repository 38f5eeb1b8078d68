import t from 'tap'
import { report, REPORT_MAX_MS } from '../../src/jobs/report.js'

t.test('report takes {"ms": 0..60000} and nothing else, and says why not in one line', async t => {
  t.same(report.parse({ ms: 0 }), { ms: 0 }, 'ms 0')
  t.same(report.parse({ ms: REPORT_MAX_MS }), { ms: 60_000 }, 'ms 60000')
  const cases: Array<[Record<string, unknown>, string]> = [
    [{}, 'ms: missing is not a whole number from 0 to 60000'],
    [{ ms: -1 }, 'ms: -1 is not a whole number from 0 to 60000'],
    [{ ms: 60_001 }, 'ms: 60001 is not a whole number from 0 to 60000'],
    [{ ms: 1.5 }, 'ms: 1.5 is not a whole number from 0 to 60000'],
    [{ ms: '100' }, 'ms: "100" is not a whole number from 0 to 60000'],
    [{ ms: 5, pdf: true, to: 'x' }, 'report takes "type" and "ms" only, not "pdf", "to"'],
  ]
  for (const [fields, reason] of cases) t.equal(report.parse(fields), reason, JSON.stringify(fields))
})

t.test('report sleeps ms in ten steps, reporting 10% to 100%, and answers what it slept', async t => {
  const seen: number[] = []
  const started = performance.now()
  const result = await report.run({ data: { ms: 50 }, progress: async p => void seen.push(p), signal: new AbortController().signal })
  t.same(seen, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 'progress every 10%')
  t.same(result, { sleptMs: 50 }, 'the result')
  t.ok(performance.now() - started >= 45, 'it took about the time asked')
})

t.test('report stops when its signal is aborted', async t => {
  const stop = new AbortController()
  const running = report.run({ data: { ms: 60_000 }, progress: async () => {}, signal: stop.signal })
  stop.abort()
  await t.rejects(running, { name: 'AbortError' }, 'the run rejects at once')
})
