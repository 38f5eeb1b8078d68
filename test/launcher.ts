// scripts/start.mjs with real processes on real ports: the stack it starts, how it stops,
// and that nothing is left holding a port. Linux only: children are found through /proc.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect as h2connect } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t from 'tap'
import {
  alive,
  children,
  childrenOf,
  freePort,
  isFree,
  listen,
  listening,
  root,
  run,
  stackOnFreePorts,
  startStack,
  untilFree,
  untilGone,
  WAIT_MS,
} from './fixtures/launcher.js'

t.test('npm start: two backends behind the balancer, output prefixed, SIGTERM to the launcher alone', async t => {
  const stack = await startStack(t)
  const kids = children(stack.proc.pid!)
  t.same(
    [...kids.keys()].sort(),
    [`backend-${stack.a}`, `backend-${stack.b}`, 'balancer'].sort(),
    'three children, no shell or npx between',
  )
  for (const { argv } of childrenOf(stack.proc.pid!)) t.equal(argv[0], process.execPath, `${argv[1]} runs directly under node`)

  const servedBy: string[] = []
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`http://127.0.0.1:${stack.balancer}/`)
    const id = String(res.headers.get('x-served-by'))
    t.equal(await res.text(), `Hello, World! from ${id}`, `request ${i + 1} answered by the backend it names`)
    servedBy.push(id)
  }
  const [first, second] = [`backend-${stack.a}`, `backend-${stack.b}`]
  t.same(servedBy, [first, second, first, second], 'round-robin: backends alternate in upstream order')
  const status = (await (await fetch(`http://127.0.0.1:${stack.admin}/status.json`)).json()) as {
    upstreams: { id: string; requests: number }[]
  }
  t.same(
    status.upstreams.map(u => [u.id, u.requests]),
    [
      [`127.0.0.1:${stack.a}`, 2],
      [`127.0.0.1:${stack.b}`, 2],
    ],
    'the admin listener counts two requests per backend',
  )

  stack.proc.kill('SIGTERM')
  const { code, signal } = await stack.exited()
  t.equal(code, 0, `launcher exits 0 after a clean stop (signal ${signal})`)
  t.ok(stack.lines.includes(`[launcher] SIGTERM, stopping ${first}, ${second}, balancer`), 'the launcher says what it stops')
  const names = new RegExp(`^\\[(launcher|${first}|${second}|balancer)\\] `)
  t.same(
    stack.lines.filter(line => !names.test(line)),
    [],
    'every line of output is prefixed with its process name',
  )
  t.same(
    await Promise.all([stack.a, stack.b, stack.balancer, stack.admin].map(isFree)),
    [true, true, true, true],
    'all four ports are free again',
  )
  t.same([...kids.values()].filter(alive), [], 'no child outlives the launcher')
})

t.test('Ctrl-C in a terminal: SIGINT to the whole process group stops everything once', async t => {
  const stack = await startStack(t, { detached: true })
  const kids = [...children(stack.proc.pid!).values()]
  process.kill(-stack.proc.pid!, 'SIGINT')
  const { code } = await stack.exited()
  t.equal(code, 0, 'launcher exits 0: each child took SIGINT and SIGTERM as one stop and exited cleanly')
  t.same(
    stack.lines.filter(line => /exited with/.test(line)),
    [],
    'no child reported as failed',
  )
  t.same(
    await Promise.all([stack.a, stack.b, stack.balancer, stack.admin].map(isFree)),
    [true, true, true, true],
    'all four ports are free again',
  )
  t.same(kids.filter(alive), [], 'no child outlives the launcher')
})

t.test('--only backend builds, then runs one backend with the flags after it', async t => {
  const port = await freePort()
  const launcher = run(t, ['--only', 'backend', '--port', String(port), '--id', 'custom-id'], {})
  await launcher.line(/^\[launcher\] building: tsc -b/)
  await launcher.line(new RegExp(`^\\[backend\\] custom-id listening on http://127\\.0\\.0\\.1:${port}$`))
  const kids = childrenOf(launcher.proc.pid!)
  t.equal(kids.length, 1, 'only one process runs')
  t.same(
    kids[0]?.argv.slice(1),
    [join(root, 'packages/backend/dist/cli.js'), '--port', String(port), '--id', 'custom-id'],
    'flags passed through as given',
  )
  const res = await fetch(`http://127.0.0.1:${port}/`)
  t.equal(res.headers.get('x-served-by'), 'custom-id', 'the backend took the --id flag')
  launcher.proc.kill('SIGTERM')
  t.equal((await launcher.exited()).code, 0, 'launcher exits 0 after a clean stop')
  t.equal(await isFree(port), true, 'the port is free again')
})

t.test('a failed build stops the launcher before anything starts', async t => {
  const port = await freePort()
  const launcher = run(t, ['--only', 'backend', '--port', String(port)], {})
  await launcher.line(/^\[launcher\] building: tsc -b/)
  // A real fault: kill tsc mid-build. It runs for hundreds of ms; the poll looks every few.
  // Wait for its argv, not just its pid: until exec, a fresh fork still shows the launcher's.
  const isTsc = (argv: string[]): boolean => argv[0] === process.execPath && argv[1] === join(root, 'node_modules/typescript/bin/tsc')
  const deadline = Date.now() + WAIT_MS
  let tsc = childrenOf(launcher.proc.pid!).find(child => isTsc(child.argv))
  while (tsc === undefined && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 2))
    tsc = childrenOf(launcher.proc.pid!).find(child => isTsc(child.argv))
  }
  t.ok(tsc, 'the launcher runs tsc directly with node, no shell')
  process.kill(tsc!.pid, 'SIGKILL')
  const { code } = await launcher.exited()
  t.equal(code, 1, 'launcher exits 1')
  t.ok(launcher.lines.includes('[launcher] build failed: tsc exited with signal SIGKILL'), 'it says the build failed and how')
  t.notOk(
    launcher.lines.some(line => line.startsWith('[backend]')),
    'the backend never started',
  )
})

t.test('--only with no process or another name is refused with the usage line', async t => {
  for (const args of [['--only', 'frontend'], ['--only']]) {
    const launcher = run(t, args, { SWITCHYARD_SKIP_BUILD: '1' })
    const { code } = await launcher.exited()
    t.equal(code, 1, `exits 1 for ${args.join(' ')}`)
    t.same(
      launcher.lines,
      ['[launcher] usage: node scripts/start.mjs [--backends N] [balancer flags...] | --only backend|balancer [flags for it...]'],
      `one usage line for ${args.join(' ')}`,
    )
  }
})

t.test('a bad --backends count exits 1 with one line, before anything starts', async t => {
  const cases: [string[], string][] = [
    [['--backends', '0'], '"0"'],
    [['--backends=65'], '"65"'],
    [['--backends', '2.5'], '"2.5"'],
    [['--backends', 'four'], '"four"'],
    [['--port', '1', '--backends'], '""'],
  ]
  for (const [args, shown] of cases) {
    const launcher = run(t, args, { SWITCHYARD_SKIP_BUILD: '1' })
    const { code } = await launcher.exited()
    t.equal(code, 1, `exits 1 for ${args.join(' ')}`)
    t.same(
      launcher.lines,
      [`[launcher] --backends: ${shown} is not a whole number from 1 to 64`],
      `one line naming the value for ${args.join(' ')}`,
    )
  }
})

t.test('--only backend that cannot start: the launcher says how it exited, and exits 1', async t => {
  const squatter = await listen(0)
  t.teardown(() => void squatter.close())
  const { port } = squatter.address() as AddressInfo
  const launcher = run(t, ['--only', 'backend', '--port', String(port)], { SWITCHYARD_SKIP_BUILD: '1' })
  const { code } = await launcher.exited()
  t.equal(code, 1, 'exits 1')
  t.match(launcher.lines.join('\n'), /^\[backend\] .*EADDRINUSE/m, 'the backend said why, under its own name')
  t.equal(launcher.lines.at(-1), '[launcher] backend exited with code 1', 'and the launcher how it ended; --only restarts nothing')
})

t.test('a second signal within 1000 ms is the same one; a later one kills the children', async t => {
  const port = await freePort()
  const launcher = run(t, ['--only', 'balancer', '--port', String(port), '--host', '127.0.0.1', '--upstream', '127.0.0.1:1'], {
    SWITCHYARD_SKIP_BUILD: '1',
  })
  await launcher.line(new RegExp(`^\\[balancer\\] switchyard listening on http://127\\.0\\.0\\.1:${port}, `))
  const balancer = childrenOf(launcher.proc.pid!)[0]!.pid
  // A child that cannot finish: stopped, so the forwarded SIGTERM stays pending.
  process.kill(balancer, 'SIGSTOP')
  // What Ctrl-C under `npm start` delivers: one from the terminal, one forwarded by npm a moment
  // later. Sent after the first is handled, since two pending signals would merge into one.
  launcher.proc.kill('SIGTERM')
  await launcher.line(/^\[launcher\] SIGTERM, stopping balancer$/)
  launcher.proc.kill('SIGTERM')
  // The rule is about elapsed time, so here the test has to let it elapse.
  await new Promise(resolve => setTimeout(resolve, 1100))
  t.equal(launcher.proc.exitCode, null, 'the launcher still waits for its child')
  t.same(
    launcher.lines.filter(line => line.startsWith('[launcher]')),
    ['[launcher] SIGTERM, stopping balancer'],
    'the second signal was taken as the first',
  )
  launcher.proc.kill('SIGTERM')
  await launcher.line(/^\[launcher\] SIGTERM again, killing balancer$/)
  t.equal((await launcher.exited()).code, 1, 'launcher exits 1 without waiting')
  t.ok(await untilGone([balancer]), 'the stopped child was killed')
  t.ok(await untilFree([port]), 'its port is free again')
})

t.test('a child that does not stop cleanly: the launcher names it and exits 1', async t => {
  const stack = await startStack(t)
  const kids = children(stack.proc.pid!)
  const victim = `backend-${stack.b}`
  // Stopped, it cannot take the SIGTERM; killed during the stop, it ends by a signal.
  process.kill(kids.get(victim)!, 'SIGSTOP')
  stack.proc.kill('SIGTERM')
  await stack.line(/^\[launcher\] SIGTERM, stopping /)
  process.kill(kids.get(victim)!, 'SIGKILL')
  const { code } = await stack.exited()
  t.equal(code, 1, 'exit 1: not a clean stop')
  t.ok(stack.lines.includes(`[launcher] ${victim} exited with signal SIGKILL`), 'the launcher says which child and how')
  t.notOk(
    stack.lines.some(line => line.includes('restarting')),
    'a death during a stop is not restarted',
  )
  t.same(
    await Promise.all([stack.a, stack.b, stack.balancer, stack.admin].map(isFree)),
    [true, true, true, true],
    'all four ports are free again',
  )
  t.same([...kids.values()].filter(alive), [], 'no orphan is left')
})

t.test('SIGKILL to the launcher: the children see the IPC channel close and stop', async t => {
  const stack = await startStack(t)
  const kids = [...children(stack.proc.pid!).values()]
  stack.proc.kill('SIGKILL')
  t.equal((await stack.exited()).signal, 'SIGKILL', 'the launcher is gone')
  t.ok(await untilFree([stack.a, stack.b, stack.balancer]), 'all three ports are freed')
  t.ok(await untilGone(kids), 'no orphan is left')
})

t.test('npm start under a process manager: SIGTERM to npm alone stops everything', async t => {
  // npm runs the script with `sh -c`, and forwards SIGTERM to that shell only. dash waits for its
  // command instead of becoming it, and dies of the signal, leaving node behind, unless the
  // script says `exec node scripts/start.mjs`.
  const npm = process.env.npm_execpath ?? join(dirname(process.execPath), '../lib/node_modules/npm/bin/npm-cli.js')
  const ports = await stackOnFreePorts()
  const launcher = run(t, ['start'], ports.env, { command: [npm] })
  await listening(launcher, ports)
  const [script] = childrenOf(launcher.proc.pid!)
  t.same(script?.argv, ['node', 'scripts/start.mjs'], "npm's child is the launcher itself, no shell between")
  launcher.proc.kill('SIGTERM')
  t.equal((await launcher.exited()).code, 0, 'npm exits 0, as the launcher did')
  t.ok(
    launcher.lines.includes(`[launcher] SIGTERM, stopping backend-${ports.a}, backend-${ports.b}, balancer`),
    'the launcher got the SIGTERM',
  )
  t.same(await Promise.all([ports.a, ports.b, ports.balancer].map(isFree)), [true, true, true], 'all three ports are free again')
  t.ok(await untilGone([script!.pid]), 'no process is left')
})

t.test('--https: a local certificate made once, HTTPS and h2 on the HTTPS port beside the plain one, the fingerprint printed', async t => {
  const stack = await stackOnFreePorts()
  const httpsPort = await freePort()
  const tlsDir = mkdtempSync(join(tmpdir(), 'switchyard-launcher-tls-'))
  t.teardown(() => rmSync(tlsDir, { recursive: true, force: true }))
  const env = { ...stack.env, SWITCHYARD_HTTPS_PORT: String(httpsPort), SWITCHYARD_TLS_DIR: join(tlsDir, 'tls') }
  const first = run(t, ['--https'], env)
  t.match(
    await first.line(/made .*localhost\.crt/),
    /^\[launcher\] made \S+localhost\.crt, SHA-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}, valid until \d{4}-/,
    'made, with its fingerprint',
  )
  t.match(await first.line(/trust it/), /curl --cacert \S+localhost\.crt https:\/\/localhost:\d+\//, 'and how to trust it')
  t.match(
    await first.line(/\[balancer\] switchyard listening on/),
    new RegExp(`and https://0\\.0\\.0\\.0:${httpsPort} \\(h2, http/1\\.1\\)`),
    'the balancer serves HTTPS too',
  )
  // The backends start beside the balancer: a request sent before they listen is refused (502).
  await Promise.all([first.line(new RegExp(`backend-${stack.a} listening`)), first.line(new RegExp(`backend-${stack.b} listening`))])
  const ca = readFileSync(join(tlsDir, 'tls', 'localhost.crt'))
  const body = await new Promise<string>((resolve, reject) => {
    const client = h2connect(`https://localhost:${httpsPort}`, { ca })
    client.on('error', reject)
    const stream = client.request({ ':path': '/' }, { endStream: true })
    let text = ''
    stream.setEncoding('utf8')
    stream.on('data', (c: string) => (text += c))
    stream.on('end', () => {
      client.close()
      resolve(text)
    })
  })
  t.match(body, /^Hello, World! from backend-\d+$/, 'a backend answers over h2, the certificate trusted as itself')
  first.proc.kill('SIGTERM')
  t.equal((await first.exited()).code, 0, 'stops cleanly')
  const again = run(t, ['--https'], env)
  t.match(await again.line(/localhost\.crt, SHA-256/), /^\[launcher\] using /, 'the next start reuses it')
  // Stopped once all three listen: a stop while a backend starts is a test of something else.
  await Promise.all([
    again.line(/\[balancer\] switchyard listening on/),
    again.line(new RegExp(`backend-${stack.a} listening`)),
    again.line(new RegExp(`backend-${stack.b} listening`)),
  ])
  again.proc.kill('SIGTERM')
  t.equal((await again.exited()).code, 0, 'stops cleanly')
})

t.test('--https where no certificate can be made: one line, exit 1, nothing started', async t => {
  const stack = await stackOnFreePorts()
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-launcher-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'a-file'), '')
  const r = run(t, ['--https'], { ...stack.env, SWITCHYARD_TLS_DIR: join(dir, 'a-file', 'tls') })
  t.match(await r.line(/https:/), /^\[launcher\] https: cannot make \S+ for the local certificate \(ENOTDIR\)$/, 'the reason in one line')
  t.equal((await r.exited()).code, 1, 'exit 1')
})

t.test('SIGTERM while the children are still loading: they die of it, and that is a clean stop', async t => {
  const ports = await stackOnFreePorts()
  const launcher = run(t, [], ports.env)
  // As soon as all three are node processes of their own (exec'd, not forks of the launcher), and
  // long before one could have loaded its modules and its signal handlers.
  const clis = ['packages/backend/dist/cli.js', 'packages/balancer/dist/cli.js'].map(cli => join(root, cli))
  const deadline = Date.now() + WAIT_MS
  while (childrenOf(launcher.proc.pid!).filter(c => clis.includes(c.argv[1] ?? '')).length < 3 && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  launcher.proc.kill('SIGTERM')
  const { code } = await launcher.exited()
  t.equal(code, 0, 'exit 0: the stop that was asked for happened')
  t.ok(
    launcher.lines.some(l => /^\[launcher\] (backend-\d+|balancer) stopped while it was still starting$/.test(l)),
    'the launcher says which child was stopped before it had started',
  )
  t.notOk(
    launcher.lines.some(l => /exited with/.test(l)),
    'no child is reported as failed',
  )
  for (const port of [ports.a, ports.b, ports.balancer, ports.admin]) t.ok(await isFree(port), `port ${port} is free`)
})
