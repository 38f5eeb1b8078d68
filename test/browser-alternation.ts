// Issue 12, "the browser sees the alternation from the first reload": Debian's headless
// Chromium, driven by playwright-core, loads the page through a real round-robin balancer in
// front of two real backends, and reloads it three times. Before the backend answered a
// browser with a page that names an empty icon, Chromium's own GET /favicon.ico took every
// other turn, and the first reload showed the same backend as the first load. Who served what
// is read from the page and from each backend's own request counts (its /stats).
import { once } from 'node:events'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import t, { type Test } from 'tap'
import { createBackend } from '../packages/backend/src/index.js'
import { createBalancer } from '../packages/balancer/src/index.js'

/** Debian's package (CI installs it in .ci/run); playwright's own browser download is not used. */
const CHROMIUM = '/usr/bin/chromium'
const MISSING = `${CHROMIUM} not found: the browser test needs Debian's chromium (apt-get install -y chromium)`

/** Longest wait for one page load. */
const WAIT = 5000

const portOf = (server: Server): number => (server.address() as AddressInfo).port

/** Listens on 127.0.0.1 port 0 and closes at teardown, connections and all. */
async function serve<S extends Server>(t: Test, server: S): Promise<S> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.close()
    server.closeAllConnections()
    await once(server, 'close')
  })
  return server
}

/** A backend's own count of the requests it got, per method and path. */
async function requestsOf(server: Server): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${portOf(server)}/stats`, { signal: AbortSignal.timeout(WAIT) })
  return ((await res.json()) as { requests: Record<string, number> }).requests
}

if (!existsSync(CHROMIUM)) {
  // On CI a missing browser is a broken image, not a reason to skip the test.
  if (process.env.CI === 'true') t.fail(MISSING)
  else t.plan(0, MISSING)
} else {
  t.test('in Chromium, a load and three reloads alternate strictly, and no favicon request takes a turn', async t => {
    const b0 = await serve(t, createBackend({ id: 'b0', exposeStats: true }))
    const b1 = await serve(t, createBackend({ id: 'b1', exposeStats: true }))
    const lb = createBalancer({
      upstreams: [b0, b1].map(b => ({ host: '127.0.0.1', port: portOf(b) })),
      policy: 'round-robin',
    })
    const { port } = await lb.listen(0, '127.0.0.1')
    t.teardown(() => lb.close())
    const url = `http://127.0.0.1:${port}/`

    // A fresh profile: no icon or page cached from an earlier run.
    const profile = mkdtempSync(join(tmpdir(), 'switchyard-chromium-'))
    t.teardown(() => rmSync(profile, { recursive: true, force: true }))
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
      timeout: 15_000,
    })
    t.teardown(() => context.close())
    const page = context.pages()[0] ?? (await context.newPage())

    const seen: string[] = []
    for (let i = 0; i < 4; i++) {
      const response = i === 0 ? await page.goto(url, { timeout: WAIT }) : await page.reload({ timeout: WAIT })
      const what = i === 0 ? 'the load' : `reload ${i}`
      t.equal(response?.status(), 200, `${what}: 200`)
      t.equal(response?.headers()['content-type'], 'text/html; charset=utf-8', `${what}: the page, not the text line`)
      // The body's text, so the words are read the same from the page and from a text/plain answer.
      const shown = ((await page.textContent('body', { timeout: WAIT })) ?? '').trim()
      const m = /^Hello, World! from (b[01])$/.exec(shown)
      t.ok(m, `${what} shows the greeting with a backend's id (${JSON.stringify(shown)})`)
      t.equal(response?.headers()['x-served-by'], m?.[1], `${what}: the page names the backend that served it`)
      seen.push(m?.[1] ?? shown)
    }
    const [first = '', second = ''] = seen
    t.same(new Set(seen), new Set(['b0', 'b1']), 'both backends served')
    t.same(seen, [first, second, first, second], `strict alternation from the first reload: ${seen.join(', ')}`)

    // Chromium asks for the icon right after a load, so a favicon request would have taken a
    // turn before the next reload and broken the alternation above (as it did before: b0, b0,
    // b1, b0, with GET /favicon.ico on b1). The counts say so from the backends' side.
    const counts = [await requestsOf(b0), await requestsOf(b1)]
    for (const [i, requests] of counts.entries()) {
      t.equal(requests['GET /favicon.ico'], undefined, `no GET /favicon.ico reached b${i}`)
      t.same(
        Object.keys(requests).sort(),
        ['GET /', 'GET /stats'],
        `b${i} got nothing but the page and this count (${JSON.stringify(requests)})`,
      )
      t.equal(requests['GET /'], 2, `b${i} served the page twice`)
    }
  })
}
