// The docs, run as a reader would run them (issue 18): every ```console block of README.md and
// docs/*.md that has `$ ` lines is typed into bash against a real stack, and what it prints is
// compared with what the page shows. When the docs and the product disagree, this fails.
//
// How a block is read (test/fixtures/doc-blocks.ts, doc-match.ts):
// - `$ command` is run; a line ending in `\` continues on the next. The lines under it, up to the
//   next `$ `, are its output (stdout and stderr together). Blank lines at the end are not output.
// - In output, `…` stands for any text within a line (times, ages, ids, dates, pids) and a line
//   `...` alone for any number of lines.
// - `npm start [-- flags]` and `npm run start:balancer|start:backend -- flags` start the launcher
//   in the background, as a reader's second terminal would hold it; the lines shown under them
//   must each appear in its output (in any order: its children print side by side). A new
//   `npm start` stops the stack the previous one started. `npx switchyard…` runs the bin of
//   node_modules/.bin, and a path of the repository (`docs/…`, `packages/…`, `scripts/…`) is made
//   absolute, since the shell's working folder is not the repository.
// - A block with no `$ ` line right under `<!-- doc-test: output -->` is what the running stack
//   prints meanwhile: each of its lines must appear in the output of the process started last,
//   since the block before.
// - The ports the docs name (8080, 8081, 5000-5003, 9090, 8443, 6379) are moved to free ports of
//   the same number of digits (so that lengths, like Content-Length, stay true) in commands and
//   output alike, and a relative path after a file flag of a start command (`--…-file`,
//   `--access-log`, `--config`, `--tls-cert`, `--tls-key`) is the shell's.
// - Each file gets a fresh temporary folder as the shell's working folder, and its own stack.
//   Variables a command exports are kept for the next commands of the same file.
// - Blocks that can't run here are in SKIP, each with its reason.
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import t, { type Test } from 'tap'
import { readBlocks, type Block, type Step } from './fixtures/doc-blocks.js'
import { linePattern, matches, outputLines } from './fixtures/doc-match.js'
import { isFree, root, run, within, WAIT_MS, type Run } from './fixtures/launcher.js'

/** Blocks that are not run, by file and their first command (or its first words), with the reason. */
const SKIP: { file: string; command: string; reason: string }[] = [
  {
    file: 'docs/troubleshooting.md',
    command: 'npm run start:balancer -- --port 80',
    reason: 'EACCES needs a user without the right to bind port 80, and CI runs as root',
  },
  { file: 'docs/deploying.md', command: 'sudo setcap', reason: 'changes the node binary for every user of the machine' },
  { file: 'docs/deploying.md', command: 'sudo systemctl', reason: 'installs and starts a system service' },
]

/** Ports the docs use, each moved to a free one of as many digits. */
const DOC_PORTS = [5000, 5001, 5002, 5003, 8080, 8081, 9090, 8443, 6379]

/** Ports some file's run holds, or the docs name: files run side by side, never on the same ports. */
const reserved = new Set(DOC_PORTS)

/**
 * The four-digit ports of the Fetch standard's "bad port" list: fetch (undici) refuses them with
 * `bad port` before it connects, and so do browsers. The CI run of stop 21 gave troubleshooting.md one
 * as its admin port, and the wait for the stack failed after 60 s though the stack was up.
 */
const FETCH_BAD_PORTS = new Set([2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697])

/** Reserves `ports` if they are all four-digit, fetchable, unreserved and free now. */
async function claim(ports: number[]): Promise<boolean> {
  if (ports.some(p => p > 9999 || reserved.has(p) || FETCH_BAD_PORTS.has(p))) return false
  ports.forEach(p => reserved.add(p))
  if ((await Promise.all(ports.map(isFree))).every(Boolean)) return true
  ports.forEach(p => reserved.delete(p))
  return false
}

async function shiftedPorts(): Promise<Map<number, number>> {
  const random = (): number => 2000 + Math.floor(Math.random() * 8000)
  // The backends' ports are consecutive, as `--backends N` numbers them from the first.
  for (let attempt = 0; attempt < 1000; attempt++) {
    const first = random()
    const backends = [first, first + 1, first + 2, first + 3]
    if (!(await claim(backends))) continue
    const others: number[] = []
    while (others.length < DOC_PORTS.length - 4 && attempt++ < 1000) {
      const p = random()
      if (await claim([p])) others.push(p)
    }
    const ports = [...backends, ...others]
    if (ports.length === DOC_PORTS.length) return new Map(DOC_PORTS.map((doc, i) => [doc, ports[i] as number]))
  }
  throw new Error('no free four-digit ports found')
}

function shift(text: string, ports: Map<number, number>): string {
  return text.replace(new RegExp(`\\b(${DOC_PORTS.join('|')})\\b`, 'g'), p => String(ports.get(Number(p))))
}

/** One file's run: its folder, its ports, the launcher it started last and the other processes. */
interface Session {
  dir: string
  ports: Map<number, number>
  stack: Run | undefined
  others: Run[]
  /** The process a start command started last: what an output block reads. */
  last: Run | undefined
  /** Where the last block began in the stack's output, for the output blocks after it. */
  mark: number
}

const bin = join(root, 'node_modules/.bin')
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('SWITCHYARD_')))

/** Runs `script` in bash in the session's folder: its output, stdout and stderr in one stream. */
function bash(s: Session, script: string): Promise<string> {
  const env = join(s.dir, '.env')
  const wrapped = `exec 2>&1; [ -f ${env} ] && . ${env}\n${script}\nexport -p > ${env}`
  const child = spawn('bash', ['-c', wrapped], {
    cwd: s.dir,
    env: { ...baseEnv, PATH: `${bin}:${process.env.PATH}` },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += String(chunk)))
  const done = new Promise<string>(resolve => child.on('close', () => resolve(out)))
  return within(done, WAIT_MS, () => `\`${script}\` still running; output so far:\n${out}`).finally(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL')
  })
}

/** Flags whose value is a file: a relative one is the shell's, as it is the reader's folder. */
const FILE_FLAG = /^--(?:[a-z-]+-file|access-log|config|tls-cert|tls-key)$/

/** A start command's arguments as bash splits them; relative file paths made the shell's. */
async function words(s: Session, args: string): Promise<string[]> {
  const out = await bash(s, `set -- ${args}\n[ $# -eq 0 ] || printf '%s\\0' "$@"`)
  const split = out.split('\0').slice(0, -1)
  const fileFlag = (flag: string | undefined): boolean => flag !== undefined && FILE_FLAG.test(flag)
  return split.map((w, i) => (fileFlag(split[i - 1]) && !isAbsolute(w) && w !== '-' && w !== 'off' ? join(s.dir, w) : w))
}

const START = /^npm (start|run start:(balancer|backend))\b(?:\s+--)?(.*)$/s

async function start(t: Test, s: Session, m: RegExpExecArray, step: Step): Promise<void> {
  const only = m[2]
  const args = await words(s, m[3] ?? '')
  const env = {
    SWITCHYARD_BACKEND_PORTS: `${s.ports.get(5000)},${s.ports.get(5001)}`,
    SWITCHYARD_PORT: String(s.ports.get(8080)),
    SWITCHYARD_ADMIN_PORT: String(s.ports.get(9090)),
    SWITCHYARD_HTTPS_PORT: String(s.ports.get(8443)),
    SWITCHYARD_REDIS_PORT: String(s.ports.get(6379)),
    SWITCHYARD_TLS_DIR: join(s.dir, 'tls'),
    SWITCHYARD_SKIP_BUILD: '1',
  }
  let proc: Run
  if (only === undefined) {
    if (s.stack !== undefined) await stop(s.stack)
    proc = s.stack = run(t, args, env)
    await proc.line(/^\[balancer\] switchyard admin on /)
    const count = Number(args[args.indexOf('--backends') + 1] ?? 2)
    for (let i = 0; i < (args.includes('--backends') ? count : 2); i++) {
      await proc.line(
        new RegExp(`^\\[backend-\\d+\\] backend-\\d+ listening on http://127\\.0\\.0\\.1:${(s.ports.get(5000) as number) + i}$`),
      )
    }
    await everyUpstreamUp(s.ports.get(9090) as number)
  } else {
    proc = run(t, ['--only', only, ...args], env)
    s.others.push(proc)
    await proc.line(/ listening on http:\/\//)
  }
  s.last = proc
  s.mark = proc.lines.length
  for (const line of step.expected) if (line.trim() !== '...') await proc.line(linePattern(line))
}

/**
 * Waits until the balancer has every upstream up with its last active check passed, as a reader
 * would see it a moment after the stack printed its lines. On a loaded machine a backend's first
 * answers can be slow enough for a check or a first request to fail while it starts, and the
 * mark-down lasts until the next passing check (2 s). `up` alone is not enough: an upstream is
 * up before its first check (HAProxy's "one failure from down"), so a first check that failed
 * while the machine was loaded could land after this looked. A loaded run (s1) saw the two loops
 * right after `npm start -- --redis` answered by one backend only, the other out of rotation
 * (its cause is not in the output; a failed first check or first request fits it). After a
 * passed check, the backend is known to answer, and both are unlikely. An admin that answers
 * anything but 200 (a token, say) is not waited on.
 */
async function everyUpstreamUp(adminPort: number): Promise<void> {
  const deadline = Date.now() + WAIT_MS
  let states = ''
  while (Date.now() < deadline) {
    const res = await fetch(`http://127.0.0.1:${adminPort}/status.json`).catch((err: Error) => {
      states = `${err.message}: ${String(err.cause)}`
      return undefined
    })
    if (res !== undefined && res.status !== 200) return void (await res.body?.cancel())
    const upstreams =
      res === undefined
        ? undefined
        : ((await res.json()) as { upstreams: { state: string; lastCheck: { ok: boolean } | null }[] }).upstreams
    if (upstreams !== undefined && upstreams.every(u => u.state === 'up' && u.lastCheck?.ok === true)) return
    if (upstreams !== undefined) states = JSON.stringify(upstreams.map(u => [u.state, u.lastCheck?.ok]))
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`the stack's upstreams were not all up within ${WAIT_MS} ms: ${states}`)
}

async function stop(proc: Run): Promise<void> {
  proc.proc.kill('SIGTERM')
  await proc.exited()
}

async function runBlock(t: Test, s: Session, block: Block): Promise<void> {
  if (block.steps.length === 0) {
    if (block.marker !== 'doc-test: output') return
    const stack = s.last
    t.ok(stack, `${block.file}:${block.line}: an output block needs a process started above it`)
    if (stack === undefined) return
    for (const line of block.lines.map(l => shift(l, s.ports))) {
      if (line.trim() === '...' || line.trim() === '') continue
      const found = await stack.line(linePattern(line), s.mark).then(
        () => true,
        () => false,
      )
      t.ok(found, `${block.file}:${block.line}: the stack printed "${line}"`)
    }
    return
  }
  s.mark = s.last?.lines.length ?? 0
  for (const step of block.steps) {
    const command = shift(step.command, s.ports)
    const expected = step.expected.map(l => shift(l, s.ports))
    const m = START.exec(command)
    if (m !== null) {
      await start(t, s, m, { command, expected })
      t.pass(`${block.file}:${block.line}: $ ${step.command}`)
      continue
    }
    const typed = command.replace(/^npx (switchyard)/, '$1').replace(/(^|\s)((?:docs|packages|scripts)\/)/g, `$1${root}/$2`)
    const out = outputLines(await bash(s, typed))
    t.ok(
      matches(expected, out),
      `${block.file}:${block.line}: $ ${step.command}`,
      matches(expected, out) ? {} : { expected: expected.join('\n'), printed: out.join('\n') },
    )
  }
}

// Each file has its own folder and ports: they run side by side, a few at a time.
t.jobs = 3

const files = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter(f => f.endsWith('.md'))
    .map(f => `docs/${f}`),
]
const skipped = new Set<(typeof SKIP)[number]>()

for (const file of files) {
  const blocks = readBlocks(root, file).filter(b => {
    const first = b.steps[0]?.command
    const skip = SKIP.find(s => s.file === file && (first === s.command || first?.startsWith(`${s.command} `) === true))
    if (skip !== undefined) skipped.add(skip)
    return skip === undefined && (b.steps.length > 0 || b.marker === 'doc-test: output')
  })
  if (blocks.length === 0) continue
  t.test(file, { buffered: true }, async t => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-docs-'))
    const s: Session = { dir, ports: await shiftedPorts(), stack: undefined, others: [], last: undefined, mark: 0 }
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    for (const block of blocks) await runBlock(t, s, block)
    for (const proc of [...s.others, ...(s.stack === undefined ? [] : [s.stack])]) await stop(proc)
  })
}

t.test('every entry of the skip list still names a block', async t => {
  for (const skip of SKIP) t.ok(skipped.has(skip), `${skip.file}: \`${skip.command}\` is a block (${skip.reason})`)
})
