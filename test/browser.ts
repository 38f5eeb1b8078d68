// The dashboard in a real browser: Debian's headless Chromium, driven by playwright-core, looks
// at the admin page of a real balancer in front of two real backends while the test sends
// traffic, kills a backend, then kills the balancer. It also saves the screenshots docs/observability.md
// shows (docs/dashboard.png). Page state is read through the page's own hooks (data-upstream,
// data-state, data-field, data-live), and every wait is bounded.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import t, { type Test } from 'tap'
import { BACKEND, BALANCER, LISTENING, startCli, type Proc } from './fixtures/processes.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const SHOTS = join(root, 'test/screenshots')
const DOC_SHOT = join(root, 'docs/dashboard.png')

/** Debian's package (CI installs it in .ci/run); playwright's own browser download is not used. */
const CHROMIUM = '/usr/bin/chromium'
const MISSING = `${CHROMIUM} not found: the browser test needs Debian's chromium (apt-get install -y chromium)`

/** Longest wait for one thing to show on the page. The live stream ticks once a second. */
const WAIT = 5000

const ADMIN = /^switchyard admin on http:\/\/[^:]+:(\d+)\//

const backend = async (t: Test, id: string): Promise<Proc> => startCli(t, BACKEND, ['--port', '0', '--id', id, '--quiet'])

/** Kills a process and waits until it is gone, so what the page shows next follows from it. */
async function kill(proc: Proc): Promise<void> {
  const gone = new Promise(resolve => proc.child.once('exit', resolve))
  proc.child.kill('SIGKILL')
  await gone
}

const row = (id: string): string => `#rows tr[data-upstream="${id}"]`

/** The `requests` cell of each row, as numbers (the page formats them with thousands separators). */
const requestCells = (page: Page): Promise<Record<string, number>> =>
  page.evaluate(`Object.fromEntries(Array.from(document.querySelectorAll('#rows tr'), tr =>
    [tr.dataset.upstream, Number(tr.querySelector('td[data-field=requests]').textContent.replace(/,/g, ''))]))`)

/**
 * Resolves once `expression` is true in the page, asking every 50 ms for up to WAIT.
 * (page.waitForFunction evals a string in the page, which the dashboard's CSP refuses;
 * page.evaluate goes through the DevTools protocol, which CSP does not govern.)
 */
async function until(page: Page, expression: string): Promise<void> {
  const deadline = Date.now() + WAIT
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`not true after ${WAIT} ms: ${expression}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** Resolves once `state` is in the row's data-state and in its badge. */
const waitForState = (page: Page, id: string, state: string): Promise<void> =>
  until(
    page,
    `(() => {
      const tr = document.querySelector('${row(id)}')
      const badge = tr && tr.querySelector('td[data-field=state] .badge.state-${state}')
      return tr !== null && tr.dataset.state === '${state}' && badge !== null && badge.textContent === '${state}'
    })()`,
  )

if (!existsSync(CHROMIUM)) {
  // On CI a missing browser is a broken image, not a reason to skip the dashboard's only browser test.
  if (process.env.CI === 'true') t.fail(MISSING)
  else t.plan(0, MISSING)
} else {
  t.test('the dashboard, live in Chromium, through traffic, a dead backend and a dead balancer', async t => {
    const [b1, b2] = [await backend(t, 'b1'), await backend(t, 'b2')]
    const [a, b] = [`127.0.0.1:${b1.ports[0]}`, `127.0.0.1:${b2.ports[0]}`]
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
        '--health-path',
        '/healthz',
        '--health-interval',
        '200ms',
        '--health-timeout',
        '200ms',
        '--unhealthy-threshold',
        '2',
        '--healthy-threshold',
        '1',
        '--upstream',
        a,
        '--upstream',
        b,
      ],
      [LISTENING, ADMIN],
    )
    const [port, adminPort] = lb.ports
    const admin = `http://127.0.0.1:${adminPort}/`

    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
      timeout: 15_000,
    })
    t.teardown(() => browser.close())

    // Before any script: the HTML as served already holds both rows, and nothing set it live.
    const noScript = await browser.newContext({ javaScriptEnabled: false })
    const raw = await noScript.newPage()
    const rawResponse = await raw.goto(admin, { timeout: WAIT })
    t.equal(rawResponse?.status(), 200, 'GET / on the admin port answers 200')
    t.same(
      await raw.locator('#rows tr').evaluateAll(trs => trs.map(tr => tr.getAttribute('data-upstream'))),
      [a, b],
      'the server-rendered table has a row for each upstream, in declared order',
    )
    t.equal(await raw.locator('body').getAttribute('data-live'), 'connecting', 'with scripts off the page never goes live')
    await noScript.close()

    const desktop = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' })
    const page = await desktop.newPage()
    const response = await page.goto(admin, { timeout: WAIT })
    t.equal(response?.status(), 200, 'the dashboard loads with 200')
    t.match(await page.title(), /Switchyard/, 'the title names Switchyard')
    await page.waitForSelector('body[data-live=live]', { timeout: WAIT })
    t.pass('the page is live over /events')
    t.equal(await page.locator('#conn').isVisible(), false, 'no lost-connection banner while live')
    await waitForState(page, a, 'up')
    await waitForState(page, b, 'up')
    t.pass('both upstreams show as up')
    t.same(await requestCells(page), { [a]: 0, [b]: 0 }, 'no requests counted before any traffic')

    // A mark in the page's global scope: if it survives, the counts below came without a reload.
    await page.evaluate('window.switchyardTestMark = 1')
    const statuses: number[] = []
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(WAIT) })
      await res.arrayBuffer()
      statuses.push(res.status)
    }
    t.same(new Set(statuses), new Set([200]), 'all 40 GETs through the balancer answered 200')
    await until(
      page,
      `Array.from(document.querySelectorAll('#rows td[data-field=requests]'))
        .reduce((n, td) => n + Number(td.textContent.replace(/,/g, '')), 0) >= 40`,
    )
    t.same(await requestCells(page), { [a]: 20, [b]: 20 }, 'the rows counted 20 each: round robin alternated')
    t.equal(await page.textContent('#totals [data-stat=requests] dd'), '40', 'the header totals 40 requests')
    t.equal(await page.evaluate('window.switchyardTestMark'), 1, 'the counts rose live, without a reload')

    // SIGKILL: no goodbye, so only the active checks can notice (2 failures at 200 ms, each up to 200 ms).
    const killed = Date.now()
    await kill(b2)
    await waitForState(page, b, 'down')
    const noticed = Date.now() - killed
    t.pass(`${b} shows as down ${noticed} ms after its backend was killed`)
    t.equal(await page.getAttribute(row(a), 'data-state'), 'up', `${a} stays up`)
    t.equal(await page.textContent(`${row(a)} td[data-field=state] .badge`), 'up', `${a}'s badge still reads up`)

    // The pictures: traffic counted, one upstream up and one down.
    mkdirSync(SHOTS, { recursive: true })
    const light = join(SHOTS, 'dashboard.png')
    await page.screenshot({ path: light, fullPage: true })
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', deviceScaleFactor: 2 })
    const small = await phone.newPage()
    await small.goto(admin, { timeout: WAIT })
    await small.waitForSelector('body[data-live=live]', { timeout: WAIT })
    t.equal(await small.getAttribute(row(b), 'data-state'), 'down', 'a second page shows the same down upstream')
    await small.screenshot({ path: join(SHOTS, 'dashboard-390-dark.png'), fullPage: true })
    // The committed copy changes only when asked, so an ordinary run leaves the tree clean.
    if (process.env.UPDATE_SCREENSHOT === '1' || !existsSync(DOC_SHOT)) {
      mkdirSync(dirname(DOC_SHOT), { recursive: true })
      copyFileSync(light, DOC_SHOT)
    }
    t.ok(existsSync(DOC_SHOT), 'docs/dashboard.png exists')

    await kill(lb)
    await page.waitForSelector('body[data-live=lost]', { timeout: WAIT })
    await page.locator('#conn').waitFor({ state: 'visible', timeout: WAIT })
    t.match(await page.textContent('#conn'), /lost/, 'the banner says the connection is lost')
    await page.screenshot({ path: join(SHOTS, 'dashboard-lost.png'), fullPage: true })
  })

  t.test('the edge cache panel, live in Chromium: hit ratio over the last minute, bytes against the budget, entries', async t => {
    const b1 = await backend(t, 'c1')
    const lb = await startCli(
      t,
      BALANCER,
      ['--port', '0', '--host', '127.0.0.1', '--admin-port', '0', '--quiet', '--cache', '4mb', '--upstream', `127.0.0.1:${b1.ports[0]}`],
      [LISTENING, ADMIN],
    )
    const [port, adminPort] = lb.ports
    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
      timeout: 15_000,
    })
    t.teardown(() => browser.close())
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage()
    // A CSP violation (a script or style the hashes do not allow) shows as a console error.
    const errors: string[] = []
    page.on('console', m => void (m.type() === 'error' && errors.push(m.text())))
    await page.goto(`http://127.0.0.1:${adminPort}/`, { timeout: WAIT })
    await page.waitForSelector('body[data-live=live]', { timeout: WAIT })
    t.equal(await page.locator('#cache').isVisible(), true, 'the cache panel shows with --cache')
    t.equal(await page.textContent('#cache [data-cache=entries] dd'), '0', 'no entries yet')
    const statuses: (string | null)[] = []
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(WAIT) })
      await res.arrayBuffer()
      statuses.push(res.headers.get('x-cache-status'))
    }
    t.same(statuses, ['MISS', 'HIT', 'HIT', 'HIT', 'HIT'], 'one MISS, then HITs')
    // The last minute counts whole seconds: the ratio shows once the second of the requests is over.
    await until(page, `document.querySelector('#cache [data-cache=hitRatio] dd').textContent.startsWith('80.0%')`)
    t.pass('the hit ratio reads 80.0% (4 of 5)')
    t.equal(await page.textContent('#cache [data-cache=entries] dd'), '1', 'one entry')
    t.match(await page.textContent('#cache [data-cache=bytes] dd'), /^\d+(\.\d)? k?B \/ 4\.2 MB/, 'bytes against the 4 MB budget')
    t.ok(Number(await page.getAttribute('#cache meter', 'value')) > 0, 'the meter shows the bytes used')
    t.same(errors, [], 'no console errors: the CSP hashes cover the page with its panel')
    mkdirSync(SHOTS, { recursive: true })
    await page.screenshot({ path: join(SHOTS, 'dashboard-cache.png'), fullPage: true })
  })
}
