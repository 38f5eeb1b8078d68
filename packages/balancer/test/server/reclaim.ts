import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { Balancer } from '../../src/balancer.js'
import type { Reclaimed } from '../../src/server/reclaim.js'
import { startBalancer, startUpstream } from '../fixtures/servers.js'

/** `count` keep-alive clients that each got one answer and now sit idle. */
async function idleClients(port: number, count: number): Promise<Socket[]> {
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Socket>((resolve, reject) => {
          const socket = connect(port, '127.0.0.1')
          socket.setEncoding('latin1')
          socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
          let text = ''
          socket.on('error', reject)
          // Reading on after the answer (not breaking out of an async iterator, which would
          // destroy the socket), so the connection stays open and idle.
          socket.on('data', (chunk: string) => {
            text += chunk
            if (text.endsWith('hello from a\n')) resolve(socket)
          })
        }),
    ),
  )
}

/**
 * Counts the forced full collections in this process, as V8 reports them: only a reclaim
 * forces one here. A reclaim makes its first two seconds after it starts, so a wait of 2.5 s
 * tells whether one started, where waiting for 'reclaimed' (10 s later) would not.
 */
function forcedCollections(t: Test): () => number {
  let forced = 0
  const count = (entries: PerformanceEntry[]): void => {
    for (const e of entries as (PerformanceEntry & { detail: { flags: number } })[]) {
      if ((e.detail.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) !== 0) forced++
    }
  }
  const observer = new PerformanceObserver(list => count(list.getEntries()))
  observer.observe({ entryTypes: ['gc'] })
  t.teardown(() => observer.disconnect())
  // Entries reach the callback later; the ones still buffered are counted now.
  return () => {
    count(observer.takeRecords())
    return forced
  }
}

async function closeAll(sockets: Socket[], balancer: Balancer, open: number): Promise<void> {
  for (const s of sockets) s.destroy()
  for (let i = 0; i < 500 && balancer.connectionsOpen !== open; i++) await sleep(10)
}

t.test('once a surge of connections is over, memory is collected and given back, once', async t => {
  const a = await startUpstream(t, 'a')
  const { balancer, port, logs } = await startBalancer(t, [a.spec], { reclaimAfter: 100 })
  // Two more that must not collect, watched over the same ten seconds: one with reclaiming off,
  // one closed while its reclaim waits for its first collection.
  const off = await startBalancer(t, [a.spec], { reclaimAfter: 0 })
  const closed = await startBalancer(t, [a.spec], { reclaimAfter: 10 })
  let others = 0
  off.balancer.on('reclaimed', () => others++)
  closed.balancer.on('reclaimed', () => others++)
  await closeAll(await idleClients(off.port, 20), off.balancer, 0)
  await closeAll(await idleClients(closed.port, 20), closed.balancer, 0)
  closed.balancer.close()

  const events: Reclaimed[] = []
  balancer.on('reclaimed', (r: Reclaimed) => events.push(r))
  const forced = forcedCollections(t)
  const clients = await idleClients(port, 120)
  t.equal(balancer.connectionsOpen, 120, '120 idle keep-alive clients')
  await closeAll(clients.slice(0, 80), balancer, 40)
  // Long enough for a reclaim, had one started, to force its first collection.
  await sleep(2500)
  t.equal(forced(), 0, 'nothing at 40 open: more than a quarter of the peak')
  const [r] = (await Promise.all([once(balancer, 'reclaimed'), closeAll(clients.slice(80, 100), balancer, 20)]))[0] as [Reclaimed]
  t.equal(r.peak, 120, 'at 20 open it ran, for the peak of 120')
  t.ok(r.heapAfter < r.heapBefore, `the heap shrank: ${r.heapBefore} -> ${r.heapAfter} bytes`)
  t.match(
    logs.at(-1),
    /^120 connections fell to 20: memory reclaimed, RSS [\d.]+ MB -> [\d.]+ MB, heap [\d.]+ MB -> [\d.]+ MB$/,
    'and said so',
  )
  t.equal(others, 0, 'the balancer with --reclaim-after 0 and the one closed early never collected')
  // V8's report of the last collection is queued as an immediate, before this one.
  await new Promise(resolve => setImmediate(resolve))
  const afterOne = forced()
  t.ok(afterOne >= 5, `its five full collections were forced (${afterOne})`)
  // The peak starts again from what is open: closing the rest is no new surge.
  await closeAll(clients.slice(100), balancer, 0)
  await sleep(2500)
  t.equal(forced(), afterOne, 'once per surge: closing the rest started no other reclaim')
  t.equal(events.length, 1, 'and reported once')
})
