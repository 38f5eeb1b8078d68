// The admin listener's defences, in the browser they are for: Debian's headless Chromium, driven
// by playwright-core. The dashboard must render and follow /events under its Content-Security-
// Policy with no violation reported; a name rebound to 127.0.0.1 gets 421; an allowed name gets
// the live page; and nothing may frame it. Page state is read through page.evaluate, which goes
// through the DevTools protocol: the page's CSP (no eval) does not govern it. Every wait is bounded.
import { existsSync } from 'node:fs'
import { chromium, type Page } from 'playwright-core'
import t from 'tap'
import { BACKEND, BALANCER, LISTENING, startCli } from './fixtures/processes.js'

const CHROMIUM = '/usr/bin/chromium'
const MISSING = `${CHROMIUM} not found: the browser test needs Debian's chromium (apt-get install -y chromium)`
const WAIT = 5000
const ADMIN = /^switchyard admin on http:\/\/[^:]+:(\d+)\//

/** Names the browser resolves to 127.0.0.1, as a rebinding attacker's DNS or an operator's would. */
const RESOLVE = '--host-resolver-rules=MAP evil.example 127.0.0.1, MAP dash.example 127.0.0.1'

/**
 * Records, from before the page's own script runs, every CSP violation the page reports. An init
 * script comes through the DevTools protocol, so the page's CSP does not block it.
 */
const RECORD_VIOLATIONS = `window.cspViolations = []
document.addEventListener('securitypolicyviolation', e => window.cspViolations.push(e.effectiveDirective + ' ' + e.blockedURI))`

/** Resolves once `expression` is true in the page, asking every 50 ms for up to WAIT. */
async function until(page: Page, expression: string): Promise<void> {
  const deadline = Date.now() + WAIT
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`not true after ${WAIT} ms: ${expression}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

const requestsShown = `Number(document.querySelector('#totals [data-stat=requests] dd').textContent.replace(/,/g, ''))`

if (!existsSync(CHROMIUM)) {
  if (process.env.CI === 'true') t.fail(MISSING)
  else t.plan(0, MISSING)
} else {
  t.test('under its CSP the dashboard renders and goes live with no violation; a rebound name gets 421', async t => {
    const b1 = await startCli(t, BACKEND, ['--port', '0', '--id', 'b1', '--quiet'])
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
        '--upstream',
        `127.0.0.1:${b1.port}`,
        '--admin-allowed-host',
        'dash.example',
      ],
      [LISTENING, ADMIN],
    )
    const [port, adminPort] = lb.ports as [number, number]
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', RESOLVE],
      timeout: 15_000,
    })
    t.teardown(() => browser.close())
    const context = await browser.newContext()
    await context.addInitScript({ content: RECORD_VIOLATIONS })
    const page = await context.newPage()
    // Chromium also writes each refusal to the console; collect those too, and any page error.
    const complaints: string[] = []
    page.on('console', m => void (/Content.Security.Policy|Refused to/i.test(m.text()) && complaints.push(m.text())))
    page.on('pageerror', e => void complaints.push(e.message))

    const response = await page.goto(`http://127.0.0.1:${adminPort}/`, { timeout: WAIT })
    t.equal(response?.status(), 200, 'the dashboard loads')
    t.match(response?.headers()['content-security-policy'], /^default-src 'self'; script-src 'sha256-/, 'under its CSP')
    await page.waitForSelector('body[data-live=live]', { timeout: WAIT })
    t.pass('the script ran and the EventSource to /events connected: live')
    t.equal(await page.evaluate(`getComputedStyle(document.querySelector('table')).borderCollapse`), 'collapse', 'the inline style applies')
    t.equal(await page.evaluate(`document.querySelectorAll('.legend svg rect').length`), 1, 'the legend swatch is drawn')

    const before = (await page.evaluate(requestsShown)) as number
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(WAIT) })
      await res.arrayBuffer()
    }
    await until(page, `${requestsShown} >= ${before + 5}`)
    t.pass('the counts rose live')
    t.same(await page.evaluate('window.cspViolations'), [], 'no CSP violation reported by the page')
    t.same(complaints, [], 'and none on the console')

    // The check can fail: a script slipped into the page is refused, and reported.
    await page.evaluate(`(() => {
      const s = document.createElement('script')
      s.textContent = 'window.injected = 1'
      document.body.appendChild(s)
    })()`)
    await until(page, 'window.cspViolations.length > 0')
    t.same(await page.evaluate('window.cspViolations'), ['script-src-elem inline'], 'an injected inline script is refused and reported')
    t.equal(await page.evaluate('window.injected'), undefined, 'and it did not run')
    t.match(complaints, [/inline script .*Content Security Policy/], 'and Chromium says so on the console')

    // DNS rebinding: evil.example resolves to 127.0.0.1, but the Host still says evil.example.
    const evil = await context.newPage()
    const refused = await evil.goto(`http://evil.example:${adminPort}/status.json`, { timeout: WAIT })
    t.equal(refused?.status(), 421, 'a rebound name gets 421')
    t.match(
      await refused?.text(),
      /^421 Misdirected Request: Host "evil\.example:\d+" does not name this admin listener/,
      'with the line that says why',
    )
    t.equal((await evil.goto(`http://evil.example:${adminPort}/`, { timeout: WAIT }))?.status(), 421, 'the dashboard too')

    // An allowed name: the page, and its event stream under the same Host, work.
    const dash = await context.newPage()
    t.equal(
      (await dash.goto(`http://dash.example:${adminPort}/`, { timeout: WAIT }))?.status(),
      200,
      '--admin-allowed-host dash.example: 200',
    )
    await dash.waitForSelector('body[data-live=live]', { timeout: WAIT })
    t.pass('and it goes live')
    t.same(await dash.evaluate('window.cspViolations'), [], 'with no violation')

    // frame-ancestors 'none': a page of another origin cannot frame the dashboard; Chromium says so on the framer's console.
    const framer = await context.newPage()
    const deadline = new Promise<string>(resolve => setTimeout(() => resolve('no refusal'), WAIT).unref())
    const refusal = new Promise<string>(resolve => framer.on('console', m => void (/frame-ancestors/.test(m.text()) && resolve(m.text()))))
    await framer.setContent(`<iframe src="http://127.0.0.1:${adminPort}/"></iframe>`, { timeout: WAIT })
    t.match(
      await Promise.race([refusal, deadline]),
      /fram(?:e|ing) 'http:\/\/127\.0\.0\.1:\d+\/'.* violates .*"frame-ancestors 'none'"/i,
      'framing is refused',
    )
    const frame = framer.frames()[1]
    t.equal(await frame?.evaluate(`document.getElementById('rows')`).catch(() => null), null, 'and the frame holds no dashboard')
  })
}
