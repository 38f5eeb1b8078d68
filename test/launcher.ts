// scripts/start.mjs with real processes on real ports: the stack it starts, how it stops,
// and that nothing is left holding a port. Linux only: children are found through /proc.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const launcherPath = join(root, 'scripts/start.mjs')
/** Long enough for a loaded CI machine to start node three times; short of tap's 60 s. */
const WAIT_MS = 15_000

/** Rejects with `what` and the output so far if `promise` takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function listen(port: number): Promise<Server> {
  const server = createServer()
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return server
}

/** A port nothing listens on right now (the kernel's choice, released at once). */
async function freePort(): Promise<number> {
  const server = await listen(0)
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/** Whether a listener could take `port` now, i.e. no process holds it. */
async function isFree(port: number): Promise<boolean> {
  try {
    const server = await listen(port)
    server.close()
    await once(server, 'close')
    return true
  } catch {
    return false
  }
}

/**
 * Polls until every port can be bound again. Only for a launcher that was SIGKILLed: there is
 * no exit to wait for, the children stop on their own when they see the IPC channel close.
 */
async function untilFree(ports: number[]): Promise<boolean> {
  const deadline = Date.now() + WAIT_MS
  for (;;) {
    const free = await Promise.all(ports.map(isFree))
    if (free.every(Boolean)) return true
    if (Date.now() > deadline) return false
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** The file's text, or undefined once the process it describes is gone. */
function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

/** The pids a process has forked, with their argv; a child that exits meanwhile is left out. */
function childrenOf(pid: number): { pid: number; argv: string[] }[] {
  const found: { pid: number; argv: string[] }[] = []
  for (const child of (readProc(`/proc/${pid}/task/${pid}/children`) ?? '').split(' ').filter(Boolean).map(Number)) {
    const cmdline = readProc(`/proc/${child}/cmdline`)
    if (cmdline !== undefined) found.push({ pid: child, argv: cmdline.split('\0').filter(Boolean) })
  }
  return found
}

/** Whether `pid` is still a running process (a zombie no longer holds anything). */
function alive(pid: number): boolean {
  const stat = readProc(`/proc/${pid}/stat`)
  return stat !== undefined && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
}

async function untilGone(pids: number[]): Promise<boolean> {
  const deadline = Date.now() + WAIT_MS
  while (pids.some(alive)) {
    if (Date.now() > deadline) return false
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return true
}

interface Run {
  proc: ChildProcess
  /** Every line of stdout and stderr so far, in order of arrival. */
  lines: string[]
  /** The first line matching `pattern`, seen already or still to come. */
  line(pattern: RegExp): Promise<string>
  /** The exit, once stdout and stderr are drained; rejects if it takes longer than WAIT_MS from now. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/**
 * Runs `command` (the launcher by default) with SWITCHYARD_* taken from `env` only, so a
 * developer's own settings do not leak in. Killed in teardown, with every process it forked.
 */
function run(t: Test, args: string[], env: Record<string, string>, options: { detached?: boolean; command?: string[] } = {}): Run {
  const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SWITCHYARD_')))
  const command = options.command ?? [launcherPath]
  const proc = spawn(process.execPath, [...command, ...args], {
    cwd: root,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  })
  const lines: string[] = []
  const waiting: { pattern: RegExp; resolve: (line: string) => void }[] = []
  const onLine = (line: string): void => {
    lines.push(line)
    for (const w of waiting.filter(w => w.pattern.test(line))) {
      waiting.splice(waiting.indexOf(w), 1)
      w.resolve(line)
    }
  }
  createInterface({ input: proc.stdout! }).on('line', onLine)
  createInterface({ input: proc.stderr! }).on('line', onLine)
  const exited = once(proc, 'close').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
  const output = (): string => `output so far:\n${lines.join('\n')}`
  const line = (pattern: RegExp): Promise<string> => {
    const seen = lines.find(l => pattern.test(l))
    if (seen !== undefined) return Promise.resolve(seen)
    const next = new Promise<string>(resolve => waiting.push({ pattern, resolve }))
    return within(Promise.race([next, exited.then(() => Promise.reject(new Error(`exited before ${pattern}; ${output()}`)))]), WAIT_MS, () => `${pattern}; ${output()}`)
  }
  // Whatever a failed test leaves behind: the tree first, found while the launcher still owns it.
  const forked = new Set<number>()
  const remember = (): void => {
    for (const child of childrenOf(proc.pid!)) {
      forked.add(child.pid)
      for (const grandchild of childrenOf(child.pid)) forked.add(grandchild.pid)
    }
  }
  proc.stdout!.on('data', remember)
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    for (const pid of [...forked].filter(alive)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // it exited since
      }
    }
    await exited
  })
  return { proc, lines, line, exited: () => within(exited, WAIT_MS, () => `the exit; ${output()}`) }
}

/** Three free ports and the env that puts the stack on them, without a build (`npm test` built it). */
async function stackOnFreePorts(): Promise<{ a: number; b: number; balancer: number; admin: number; env: Record<string, string> }> {
  const [a, b, balancer, admin] = [await freePort(), await freePort(), await freePort(), await freePort()] as [number, number, number, number]
  return {
    a,
    b,
    balancer,
    admin,
    env: {
      SWITCHYARD_BACKEND_PORTS: `${a},${b}`,
      SWITCHYARD_PORT: String(balancer),
      SWITCHYARD_ADMIN_PORT: String(admin),
      SWITCHYARD_SKIP_BUILD: '1',
    },
  }
}

/**
 * Waits until all three processes listen. Before that a child may not have its signal handlers
 * yet, and a stop then kills it by the signal instead of letting it exit 0.
 */
async function listening(launcher: Run, ports: { a: number; b: number; balancer: number; admin: number }): Promise<void> {
  await launcher.line(new RegExp(`^\\[backend-${ports.a}\\] backend-${ports.a} listening on http://127\\.0\\.0\\.1:${ports.a}$`))
  await launcher.line(new RegExp(`^\\[backend-${ports.b}\\] backend-${ports.b} listening on http://127\\.0\\.0\\.1:${ports.b}$`))
  await launcher.line(new RegExp(`^\\[balancer\\] switchyard listening on http://0\\.0\\.0\\.0:${ports.balancer}, `))
  // The dashboard's URL is printed.
  await launcher.line(new RegExp(`^\\[balancer\\] switchyard admin on http://127\\.0\\.0\\.1:${ports.admin}/ `))
}

/** Starts the full stack on free ports and waits until all three processes listen. */
async function startStack(t: Test, options: { detached?: boolean } = {}): Promise<Run & Awaited<ReturnType<typeof stackOnFreePorts>>> {
  const ports = await stackOnFreePorts()
  const launcher = run(t, [], ports.env, options)
  await listening(launcher, ports)
  return { ...launcher, ...ports }
}

/** The launcher's children by name: the --id of a backend, or "balancer". */
function children(pid: number): Map<string, number> {
  const named = childrenOf(pid).map(({ pid, argv }): [string, number] => {
    const id = argv.indexOf('--id')
    return [id === -1 ? 'balancer' : String(argv[id + 1]), pid]
  })
  return new Map(named)
}

t.test('npm start: two backends behind the balancer, output prefixed, SIGTERM to the launcher alone', async t => {
  const stack = await startStack(t)
  const kids = children(stack.proc.pid!)
  t.same([...kids.keys()].sort(), [`backend-${stack.a}`, `backend-${stack.b}`, 'balancer'].sort(), 'three children, no shell or npx between')
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
  const status = (await (await fetch(`http://127.0.0.1:${stack.admin}/status.json`)).json()) as { upstreams: { id: string; requests: number }[] }
  t.same(
    status.upstreams.map(u => [u.id, u.requests]),
    [[`127.0.0.1:${stack.a}`, 2], [`127.0.0.1:${stack.b}`, 2]],
    'the admin listener counts two requests per backend',
  )

  stack.proc.kill('SIGTERM')
  const { code, signal } = await stack.exited()
  t.equal(code, 0, `launcher exits 0 after a clean stop (signal ${signal})`)
  t.ok(stack.lines.includes(`[launcher] SIGTERM, stopping ${first}, ${second}, balancer`), 'the launcher says what it stops')
  const names = new RegExp(`^\\[(launcher|${first}|${second}|balancer)\\] `)
  t.same(stack.lines.filter(line => !names.test(line)), [], 'every line of output is prefixed with its process name')
  t.same(await Promise.all([stack.a, stack.b, stack.balancer, stack.admin].map(isFree)), [true, true, true, true], 'all four ports are free again')
  t.same([...kids.values()].filter(alive), [], 'no child outlives the launcher')
})

t.test('Ctrl-C in a terminal: SIGINT to the whole process group stops everything once', async t => {
  const stack = await startStack(t, { detached: true })
  const kids = [...children(stack.proc.pid!).values()]
  process.kill(-stack.proc.pid!, 'SIGINT')
  const { code } = await stack.exited()
  t.equal(code, 0, 'launcher exits 0: each child took SIGINT and SIGTERM as one stop and exited cleanly')
  t.same(stack.lines.filter(line => /exited with/.test(line)), [], 'no child reported as failed')
  t.same(await Promise.all([stack.a, stack.b, stack.balancer, stack.admin].map(isFree)), [true, true, true, true], 'all four ports are free again')
  t.same(kids.filter(alive), [], 'no child outlives the launcher')
})

t.test('a child killed with SIGKILL: the launcher names it, stops the rest and exits 1', async t => {
  const stack = await startStack(t)
  const kids = children(stack.proc.pid!)
  const victim = `backend-${stack.b}`
  process.kill(kids.get(victim)!, 'SIGKILL')
  await stack.line(new RegExp(`^\\[launcher\\] ${victim} exited with signal SIGKILL$`))
  const { code } = await stack.exited()
  t.equal(code, 1, 'launcher exits 1 when a child died on its own')
  t.ok(stack.lines.includes(`[launcher] ${victim} is down, stopping backend-${stack.a}, balancer`), 'it stops the others and says so')
  t.same(await Promise.all([stack.a, stack.b, stack.balancer, stack.admin].map(isFree)), [true, true, true, true], 'all four ports are free again')
  t.same([...kids.values()].filter(alive), [], 'no orphan is left')
})

t.test('a backend whose port is taken exits 1, and the launcher stops the stack', async t => {
  const ports = await stackOnFreePorts()
  const squatter = await listen(ports.a)
  t.teardown(() => void squatter.close())
  const launcher = run(t, [], ports.env)
  await launcher.line(new RegExp(`^\\[launcher\\] backend-${ports.a} exited with code 1$`))
  const { code } = await launcher.exited()
  t.equal(code, 1, 'launcher exits 1')
  t.ok(launcher.lines.some(line => /EADDRINUSE|in use/.test(line)), 'the backend said why, under its own name')
  t.same(await Promise.all([ports.b, ports.balancer].map(isFree)), [true, true], 'the other ports are free again')
})

t.test('--only backend builds, then runs one backend with the flags after it', async t => {
  const port = await freePort()
  const launcher = run(t, ['--only', 'backend', '--port', String(port), '--id', 'custom-id'], {})
  await launcher.line(/^\[launcher\] building: tsc -b/)
  await launcher.line(new RegExp(`^\\[backend\\] custom-id listening on http://127\\.0\\.0\\.1:${port}$`))
  const kids = childrenOf(launcher.proc.pid!)
  t.equal(kids.length, 1, 'only one process runs')
  t.same(kids[0]?.argv.slice(1), [join(root, 'packages/backend/dist/cli.js'), '--port', String(port), '--id', 'custom-id'], 'flags passed through as given')
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
  t.notOk(launcher.lines.some(line => line.startsWith('[backend]')), 'the backend never started')
})

t.test('arguments other than --only backend|balancer are refused', async t => {
  for (const args of [['--port', '5002'], ['--only', 'frontend'], ['--only']]) {
    const launcher = run(t, args, { SWITCHYARD_SKIP_BUILD: '1' })
    const { code } = await launcher.exited()
    t.equal(code, 1, `exits 1 for ${args.join(' ')}`)
    t.ok(launcher.lines.some(line => line.startsWith('[launcher] usage: ')), `prints usage for ${args.join(' ')}`)
  }
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
  t.same(launcher.lines.filter(line => line.startsWith('[launcher]')), ['[launcher] SIGTERM, stopping balancer'], 'the second signal was taken as the first')
  launcher.proc.kill('SIGTERM')
  await launcher.line(/^\[launcher\] SIGTERM again, killing balancer$/)
  t.equal((await launcher.exited()).code, 1, 'launcher exits 1 without waiting')
  t.ok(await untilGone([balancer]), 'the stopped child was killed')
  t.ok(await untilFree([port]), 'its port is free again')
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
  t.ok(launcher.lines.includes(`[launcher] SIGTERM, stopping backend-${ports.a}, backend-${ports.b}, balancer`), 'the launcher got the SIGTERM')
  t.same(await Promise.all([ports.a, ports.b, ports.balancer].map(isFree)), [true, true, true], 'all three ports are free again')
  t.ok(await untilGone([script!.pid]), 'no process is left')
})
