// The dashboard's Drain / Maint / Ready buttons in the real browser (Debian's headless Chromium, playwright-core): the
// page asks for the token once, keeps it in sessionStorage, shows a failed call's message on the row, and a drain from
// the page stops traffic to that upstream while a client loop runs. Every wait is bounded.
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Page } from 'playwright-core'
import t, { type Test } from 'tap'
import { BALANCER, LISTENING, startCli } from './fixtures/processes.js'
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { tempDir } from '../packages/balancer/test/fixtures/temp.js'

const CHROMIUM = '/usr/bin/chromium'
const MISSING = `${CHROMIUM} not found: the browser test needs Debian's chromium (apt-get install -y chromium)`
const WAIT = 5000
const ADMIN = /^switchyard admin on http:\/\/[^:]+:(\d+)\//
const TOKEN = 'browser-test-token-0123456789abcdef'

async function until(page: Page, expression: string): Promise<void> {
  const deadline = Date.now() + WAIT
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`not true after ${WAIT} ms: ${expression}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** A backend that counts what it serves and says who it is. */
async function backend(t: Test, name: string) {
  const b = { name, hits: 0, spec: '' }
  const server = createServer((_req, res) => {
    b.hits++
    res.setHeader('x-served-by', name)
    res.end(`hello from ${name}\n`)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  b.spec = `127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return b
}

const cellOf = (id: string, what: string): string => `document.querySelector('tr[data-upstream="${id}"] [data-field=admin] ${what}')`

if (!existsSync(CHROMIUM)) {
  if (process.env.CI === 'true') t.fail(MISSING)
  else t.plan(0, MISSING)
} else {
  t.test('drain from the page: the token asked once, a failed call shown on the row, traffic leaves the upstream', async t => {
    const dir = tempDir(t, 'browser')
    writeFileSync(join(dir, 'token'), TOKEN)
    const a = await backend(t, 'a')
    const b = await backend(t, 'b')
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
        join(dir, 'token'),
        '--upstream',
        a.spec,
        '--upstream',
        b.spec,
      ],
      [LISTENING, ADMIN],
    )
    const [port, adminPort] = lb.ports as [number, number]
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
      timeout: 15_000,
    })
    t.teardown(() => browser.close())
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', e => void errors.push(e.message))
    page.on('console', m => void (/Content.Security.Policy|Refused to/i.test(m.text()) && errors.push(m.text())))
    const answers = [`${TOKEN}x`, TOKEN]
    const prompts: string[] = []
    page.on('dialog', d => {
      prompts.push(d.message())
      void d.accept(answers.shift())
    })
    await page.goto(`http://127.0.0.1:${adminPort}/`, { timeout: WAIT })
    await page.waitForSelector('body[data-live=live]', { timeout: WAIT })

    // A client loop runs the whole time, bounded in count.
    let stop = false
    const loop = (async () => {
      for (let i = 0; i < 5000 && !stop; i++)
        await (await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(WAIT) })).arrayBuffer()
    })()

    // A wrong token first: the row shows the 401, and the page forgets that token.
    await page.click(`tr[data-upstream="${a.spec}"] button[data-set=drain]`)
    await until(page, `${cellOf(a.spec, '.msg')}.textContent.startsWith('401 Unauthorized')`)
    t.pass('a failed call shows its message on the row')
    t.equal(await page.evaluate(`sessionStorage.getItem('switchyard-admin-token')`), null, 'a refused token is not kept')

    // The right one: drained, and the token kept for the tab.
    await page.click(`tr[data-upstream="${a.spec}"] button[data-set=drain]`)
    await until(page, `${cellOf(a.spec, '.badge')}.textContent === 'drain'`)
    t.equal(await page.evaluate(`${cellOf(a.spec, '.msg')}.textContent`), '', 'the message is gone')
    t.equal(await page.evaluate(`sessionStorage.getItem('switchyard-admin-token')`), TOKEN, 'the token is kept in sessionStorage')
    const atDrain = a.hits
    const bAtDrain = b.hits
    const served = Date.now() + WAIT
    while (b.hits < bAtDrain + 50 && Date.now() < served) await new Promise(resolve => setTimeout(resolve, 10))
    t.ok(b.hits >= bAtDrain + 50, 'b served 50 more requests of the loop')
    t.equal(a.hits, atDrain, `a got nothing more while b served 50 requests of the loop`)

    // Ready from the page, with no new prompt: traffic comes back.
    await page.click(`tr[data-upstream="${a.spec}"] button[data-set=ready]`)
    await until(page, `${cellOf(a.spec, '.badge')}.textContent === 'ready'`)
    const deadline = Date.now() + WAIT
    while (a.hits === atDrain && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
    t.ok(a.hits > atDrain, 'traffic reaches a again')
    stop = true
    await loop
    t.equal(prompts.length, 2, 'the token was asked for twice: once, and again after the wrong one')
    t.same(errors, [], 'no page error and no CSP refusal')
  })
}
