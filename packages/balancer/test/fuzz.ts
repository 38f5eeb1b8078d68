/**
 * A seeded fuzz test of the balancer's HTTP framing, with raw sockets on both sides (issue 11).
 *
 * Phase 1 sends thousands of mutated requests through a real balancer to a recording upstream
 * that frames what it receives strictly (fixtures/fuzz/phase1.ts); phase 2 has the upstream
 * answer with mutated responses (phase2.ts). Cases run concurrently, next to "victim" clients
 * with clean requests, so that they share the balancer's upstream connections. The invariants
 * are in fixtures/fuzz/report.ts: the balancer survives; no upstream sees a request the client
 * did not send as one of its own; no client sees bytes meant for another request; every client
 * connection is answered or closed within the deadline; what crosses stays well-formed.
 *
 * FUZZ_SEED (default fixed, so that CI runs the same cases every time) and FUZZ_CASES (phase
 * 1's count; phase 2 runs 40% of it) scale the run; FUZZ_CASE=<phase>:<case> replays one case
 * alone, next to the victims, and prints what each side saw. A failure prints the seed, a case
 * that replays it and that case's bytes, JSON-escaped.
 */
import t, { type Test } from 'tap'
import { runPool, type Talk } from './fixtures/fuzz/clients.js'
import { CrashWatch } from './fixtures/fuzz/crash-watch.js'
import { RequestPhase } from './fixtures/fuzz/phase1.js'
import { ResponsePhase } from './fixtures/fuzz/phase2.js'
import { Report } from './fixtures/fuzz/report.js'
import type { Phase } from './fixtures/fuzz/upstream.js'
import { Victims } from './fixtures/fuzz/victims.js'
import { startBalancer } from './fixtures/servers.js'

function seedFrom(text: string | undefined): number {
  if (text === undefined || text === '') return 0x5eed11
  const n = Number(text)
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
    throw new Error(`FUZZ_SEED must be an integer in 0..4294967295, not ${JSON.stringify(text)}`)
  return n
}
function countFrom(text: string | undefined): number {
  const n = Number(text ?? 2500)
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000)
    throw new Error(`FUZZ_CASES must be an integer in 1..1000000, not ${JSON.stringify(text)}`)
  return n
}
function onlyFrom(text: string | undefined): { phase: 1 | 2; index: number } | undefined {
  if (text === undefined || text === '') return undefined
  const m = /^([12]):(\d+)$/.exec(text)
  if (m === null) throw new Error(`FUZZ_CASE must be <phase>:<case>, as 1:123, not ${JSON.stringify(text)}`)
  return { phase: Number(m[1]) as 1 | 2, index: Number(m[2]) }
}

const SEED = seedFrom(process.env.FUZZ_SEED)
const CASES = { 1: countFrom(process.env.FUZZ_CASES), 2: Math.ceil(countFrom(process.env.FUZZ_CASES) * 0.4) }
const ONLY = onlyFrom(process.env.FUZZ_CASE)
/**
 * Short balancer timeouts, so that a balancer that does its job ends every connection within
 * about 2.5 s: a stalled head (checked once a second), a stalled body, a silent upstream. No
 * upstream is ever marked down, so one bad response cannot turn the rest into 503s.
 */
const OPTIONS = { maxFails: 0, connectTimeout: 1000, timeout: 2000, clientHeaderTimeout: 1000, clientBodyTimeout: 1000, queueTimeout: 1000 }
/**
 * Silence on a client connection past every timeout above, with room to spare: only a connection
 * the balancer forgot reaches it (clients.ts `talk` counts it from the last byte received).
 */
const DEADLINE = 6000
/** A replay only looks for an exception, which comes within milliseconds of its bytes. */
const REPLAY_DEADLINE = 2500
/**
 * Cases at a time. A case the balancer hangs holds its slot until the deadline while costing
 * nothing, so phase 2, where today's balancer hangs often, runs more at once.
 */
const CONCURRENCY = { 1: 24, 2: 128 }
/** No new case starts after this (ms): a balancer that hangs often still reports in bounded time. */
const BUDGET = { 1: 16_000, 2: 14_000 }
const VICTIMS = 3

t.comment(
  `fuzz seed ${SEED} (FUZZ_SEED), ${CASES[1]} + ${CASES[2]} cases (FUZZ_CASES)${ONLY ? `, only case ${ONLY.phase}:${ONLY.index}` : ''}`,
)

/**
 * Runs one phase: its upstream behind a real balancer, its cases `CONCURRENCY` at a time next
 * to the victims, then the replays that name the case behind each exception, and the report.
 */
async function runPhase(t: Test, number: 1 | 2, make: (report: Report, watch: CrashWatch) => Phase): Promise<void> {
  const report = new Report(number, SEED)
  const watch = new CrashWatch(t)
  const phase = make(report, watch)
  const { port } = await startBalancer(t, [await phase.upstream(t)], OPTIONS)
  const victims = new Victims(port, number === 1 ? 'fz' : 'fz2', DEADLINE, report, () => watch.inFlight)
  victims.start(VICTIMS)
  const indices = ONLY === undefined ? Array.from({ length: CASES[number] }, (_, i) => i) : [ONLY.index]
  const started = Date.now()
  const run = await runPool(indices, CONCURRENCY[number], BUDGET[number], async i => {
    watch.start(i)
    // Victims keep pace with the cases; alone, a case gets more of them to hit.
    victims.tick(ONLY === undefined ? 1 : 10)
    const got: Talk = await phase.run(port, i, DEADLINE)
    watch.done(i)
    phase.check(i, got)
  })
  await victims.stop()
  const ms = Date.now() - started
  await watch.attribute(
    report,
    async (i, abort) => void (await phase.run(port, i, REPLAY_DEADLINE, abort)),
    i => phase.describe(i),
  )
  phase.finish(t, run.ran)
  if (ONLY !== undefined) {
    t.comment(
      Object.entries(phase.describe(ONLY.index))
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n'),
    )
    t.comment(phase.log.join('\n'))
  }
  report.emit(t)
  if (report.size === 0) t.pass(`phase ${number}: ${run.ran} cases, no invariant broken`)
  t.comment(
    `phase ${number}: ${run.ran} cases in ${ms} ms${run.cut ? ` (stopped at the ${BUDGET[number]} ms budget)` : ''}; victims sent ${victims.sent}`,
  )
  t.ok(victims.sent > 0, 'victim requests ran alongside the cases')
}

t.test('phase 1: mutated requests through the balancer to a recording upstream', { skip: ONLY !== undefined && ONLY.phase !== 1 }, t =>
  runPhase(t, 1, (report, watch) => new RequestPhase(report, watch, SEED, ONLY !== undefined)),
)

t.test('phase 2: mutated upstream responses through the balancer', { skip: ONLY !== undefined && ONLY.phase !== 2 }, t =>
  runPhase(t, 2, (report, watch) => new ResponsePhase(report, watch, SEED, ONLY !== undefined)),
)
