import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t from 'tap'
import { createAccessLog, formatCombined, timeLocal, type AccessEntry } from '../../src/observe/access-log.js'
import { ConfigError } from '../../src/errors.js'
import { tempDir } from '../fixtures/temp.js'

/** The built module, for child processes (c8 maps their coverage back to src through the source maps). */
const BUILT = pathToFileURL(fileURLToPath(new URL('../../dist/observe/access-log.js', import.meta.url))).href

const FULL: AccessEntry = {
  time: Date.UTC(2026, 10, 28, 10, 15, 3, 456),
  client: '127.0.0.1',
  method: 'GET',
  path: '/api/items?page=2',
  httpVersion: '1.1',
  status: 200,
  bytes: 30,
  upstream: '127.0.0.1:5000',
  upstreamMs: 2,
  totalMs: 3,
  retries: 1,
  cache: 'HIT',
  referer: 'http://example.com/',
  userAgent: 'curl/8.5.0',
}
const FULL_LINE =
  '127.0.0.1 - - [28/Nov/2026:10:15:03 +0000] "GET /api/items?page=2 HTTP/1.1" 200 30 "http://example.com/" "curl/8.5.0"' +
  ' upstream=127.0.0.1:5000 upstream_time=0.002 request_time=0.003 retries=1 cache=HIT'

/** An answer the balancer gave itself: no upstream tried, no optional header. */
const BARE: AccessEntry = {
  ...FULL,
  client: '::1',
  method: 'POST',
  path: '/',
  httpVersion: '1.0',
  status: 503,
  bytes: 0,
  upstream: undefined,
  upstreamMs: undefined,
  totalMs: 0.4,
  retries: 0,
  cache: undefined,
  referer: undefined,
  userAgent: undefined,
}

const entry = (path: string): AccessEntry => ({ ...FULL, path })
const lineOf = (path: string): string => formatCombined(entry(path))

const read = (file: string): string => (existsSync(file) ? readFileSync(file, 'utf8') : '')

/**
 * Polls `file` until it holds `want`. The log writes asynchronously and tells no one when a
 * write is done, so there is no event to await. Every test that opens a file waits for a line
 * this way before it ends: an open still under way when the directory is removed would fail
 * outside the test.
 */
async function until(file: string, want: (text: string) => boolean, what: string): Promise<string> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const text = read(file)
    if (want(text)) return text
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; ${file} holds ${JSON.stringify(text)}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

interface ChildResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `code` as an ES module in a new node process, importing the built access log as `createAccessLog`. */
function child(code: string, env: NodeJS.ProcessEnv = process.env): Promise<ChildResult> {
  const source = `import { createAccessLog } from ${JSON.stringify(BUILT)}\n${code}`
  const proc = spawn(process.execPath, ['--input-type=module', '-e', source], { stdio: ['ignore', 'pipe', 'pipe'], env })
  let stdout = ''
  let stderr = ''
  proc.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
  proc.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
  return new Promise((resolve, reject) => {
    proc.on('error', reject)
    proc.on('close', code => resolve({ code, stdout, stderr }))
  })
}

t.test('timeLocal is nginx $time_local in UTC', async t => {
  const cases: [string, number, string][] = [
    ['the epoch', 0, '01/Jan/1970:00:00:00 +0000'],
    ['two-digit day and time', Date.UTC(2026, 10, 28, 10, 15, 3, 999), '28/Nov/2026:10:15:03 +0000'],
    ['single-digit day, hour, minute, second', Date.UTC(2021, 1, 5, 7, 8, 9), '05/Feb/2021:07:08:09 +0000'],
    ['last second of a year', Date.UTC(1999, 11, 31, 23, 59, 59, 999), '31/Dec/1999:23:59:59 +0000'],
    ['a leap day', Date.UTC(2024, 1, 29, 0, 0, 0), '29/Feb/2024:00:00:00 +0000'],
    ['a unix time', 1_700_000_000_000, '14/Nov/2023:22:13:20 +0000'],
  ]
  for (const [name, ms, want] of cases) t.equal(timeLocal(ms), want, name)
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
  months.forEach((name, m) => {
    t.equal(timeLocal(Date.UTC(2025, m, 9, 9, 9, 9)), `09/${name}/2025:09:09:09 +0000`, `month ${m + 1} is ${name}`)
  })
  // Formatted once per second: the same second gives the same text, the next one a new text.
  const second = Date.UTC(2026, 10, 28, 10, 15, 3)
  t.equal(timeLocal(second + 1), '28/Nov/2026:10:15:03 +0000')
  t.equal(timeLocal(second + 998), '28/Nov/2026:10:15:03 +0000', 'the same second, from the cache')
  t.equal(timeLocal(second + 1000), '28/Nov/2026:10:15:04 +0000', 'the next second, formatted anew')
})

t.test('formatCombined writes the nginx combined line and the upstream fields', async t => {
  t.equal(formatCombined(FULL), FULL_LINE, 'a full entry')
  t.equal(
    formatCombined(BARE),
    '::1 - - [28/Nov/2026:10:15:03 +0000] "POST / HTTP/1.0" 503 0 "-" "-" upstream=- upstream_time=- request_time=0.000 retries=0 cache=-',
    'missing fields are -',
  )
  t.match(formatCombined({ ...FULL, referer: '', userAgent: '' }), /200 30 "-" "-" upstream=/, 'empty referer and user agent are "-"')
  t.match(
    formatCombined({ ...FULL, upstreamMs: 0, totalMs: 1234.5678 }),
    / upstream_time=0\.000 request_time=1\.235 /,
    'times in seconds to the millisecond; 0 ms is 0.000, not -',
  )
  t.match(formatCombined({ ...FULL, status: 499, bytes: 0 }), /" 499 0 "/, 'status and bytes as numbers')
})

t.test('formatCombined escapes quoted fields as nginx does', async t => {
  const cases: [string, string, string][] = [
    ['double quote', 'a"b', 'a\\x22b'],
    ['backslash', 'a\\b', 'a\\x5cb'],
    ['NUL', 'a\x00b', 'a\\x00b'],
    ['tab', 'a\tb', 'a\\x09b'],
    ['newline', 'a\r\nb', 'a\\x0d\\x0ab'],
    ['unit separator', 'a\x1fb', 'a\\x1fb'],
    ['DEL', 'a\x7fb', 'a\\x7fb'],
    // Node hands header values over as latin1, one char per byte: "é" in UTF-8 arrives as "Ã©".
    ['UTF-8 bytes as Node reads them', 'caf\u00c3\u00a9', 'caf\\xc3\\xa9'],
    ['a latin1 byte', '\u00ff', '\\xff'],
    ['printable ASCII as is', " !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~", " !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~"],
  ]
  for (const [name, raw, escaped] of cases) {
    const line = formatCombined({ ...FULL, path: `/${raw}`, referer: raw, userAgent: raw })
    t.equal(
      line,
      `127.0.0.1 - - [28/Nov/2026:10:15:03 +0000] "GET /${escaped} HTTP/1.1" 200 30 "${escaped}" "${escaped}"` +
        ' upstream=127.0.0.1:5000 upstream_time=0.002 request_time=0.003 retries=1 cache=HIT',
      `${name}: escaped in the request line, referer and user agent`,
    )
  }
  t.match(formatCombined({ ...FULL, method: 'G"T' }), /"G\\x22T \/api/, 'the method is inside the quoted request too')
})

t.test('combined lines are appended to the file, existing lines kept', async t => {
  const file = join(tempDir(t, 'access-log'), 'access.log')
  writeFileSync(file, 'an older line\n')
  const log = createAccessLog('combined', file)
  log.write(FULL)
  log.write(BARE)
  const text = await until(file, s => s.split('\n').length > 3, 'two lines')
  t.equal(text, `an older line\n${FULL_LINE}\n${formatCombined(BARE)}\n`, 'both lines, in order, after the old one')
})

t.test('a file that does not exist yet is created at once', async t => {
  const file = join(tempDir(t, 'access-log'), 'new.log')
  const log = createAccessLog('combined', file)
  t.ok(existsSync(file), 'created before createAccessLog returns: the start-up check opens it for appending')
  log.write(FULL)
  t.equal(await until(file, s => s !== '', 'a line'), `${FULL_LINE}\n`, 'then written to')
})

t.test('json lines parse, carry every field with time as ISO, and no level, pid or hostname', async t => {
  const file = join(tempDir(t, 'access-log'), 'access.json')
  const log = createAccessLog('json', file)
  log.write(FULL)
  log.write(BARE)
  log.write({ ...FULL, upstreamMs: 31.41862600000013, totalMs: 3.469446951953614 })
  const text = await until(file, s => s.split('\n').length > 3, 'three lines')
  const [full = '', bare = '', long = '', after] = text.split('\n')
  t.equal(after, '', 'three lines, each ended by a newline')
  t.match(long, /"upstreamMs":31\.419,"totalMs":3\.469,/, 'times rounded to the microsecond')
  const parse = (line: string): unknown => {
    try {
      return JSON.parse(line)
    } catch (err) {
      return `${(err as Error).message}: ${line}`
    }
  }
  const iso = '2026-11-28T10:15:03.456Z'
  t.same(parse(full), { type: 'access', ...FULL, time: iso }, 'the full entry, time as ISO, tagged as an access line')
  t.same(
    parse(bare),
    {
      type: 'access',
      time: iso,
      client: '::1',
      method: 'POST',
      path: '/',
      httpVersion: '1.0',
      status: 503,
      bytes: 0,
      totalMs: 0.4,
      retries: 0,
    },
    'the bare entry, without its undefined fields',
  )
  t.match(full, /^\{"type":"access","time":"2026-11-28T10:15:03\.456Z",/, 'type, then time, lead the line')
})

t.test('flush() right after creation, before the file is open, does not throw', async t => {
  const file = join(tempDir(t, 'access-log'), 'access.log')
  const log = createAccessLog('combined', file)
  t.doesNotThrow(() => log.flush(), 'flush with nothing written and the file not open yet')
  log.write(FULL)
  t.doesNotThrow(() => log.flush(), 'flush with a line buffered and the file not open yet')
  t.equal(await until(file, s => s !== '', 'the line'), `${FULL_LINE}\n`, 'the line is written once the file is open')
})

t.test('flush() right after creation writes what was written before the file opened', async t => {
  const file = join(tempDir(t, 'access-log'), 'access.log')
  const log = createAccessLog('combined', file)
  log.write(FULL)
  log.flush()
  t.equal(read(file), `${FULL_LINE}\n`, 'on disk when flush() returns')
  t.equal(await until(file, s => s !== '', 'the line'), `${FULL_LINE}\n`, 'written once, in the end')
})

t.test('flush() writes buffered lines synchronously', async t => {
  const file = join(tempDir(t, 'access-log'), 'access.log')
  const log = createAccessLog('combined', file)
  log.write(entry('/open'))
  await until(file, s => s.includes('/open '), 'the file to be open')
  // /a starts an asynchronous write (or waits for the one under way); /b and /c are buffered
  // behind it, so only flush() can have put them on disk by the time it returns.
  log.write(entry('/a'))
  log.write(entry('/b'))
  log.write(entry('/c'))
  log.flush()
  const now = read(file)
  t.ok(now.includes(`${lineOf('/b')}\n`), '/b is on disk when flush() returns')
  t.ok(now.includes(`${lineOf('/c')}\n`), '/c is on disk when flush() returns')
  const text = await until(file, s => s.includes('/a '), '/a')
  t.same(text.trimEnd().split('\n').sort(), ['/open', '/a', '/b', '/c'].map(lineOf).sort(), 'every line written exactly once')
})

t.test('reopen() after logrotate renamed the file writes to a new file at the path', async t => {
  const dir = tempDir(t, 'access-log')
  const file = join(dir, 'access.log')
  const rotated = join(dir, 'access.log.1')
  const log = createAccessLog('combined', file)
  log.write(entry('/before'))
  await until(file, s => s !== '', 'the first line')
  renameSync(file, rotated)
  log.reopen()
  log.write(entry('/after'))
  t.equal(await until(file, s => s !== '', 'a new file'), `${lineOf('/after')}\n`, 'the later line is in a new file at the path')
  log.write(entry('/later'))
  t.equal(
    await until(file, s => s.includes('/later '), '/later'),
    `${lineOf('/after')}\n${lineOf('/later')}\n`,
    'so are the lines after it',
  )
  t.equal(read(rotated), `${lineOf('/before')}\n`, 'the rotated file keeps only what came before')
})

t.test('a file that cannot be opened for appending is a ConfigError naming it', async t => {
  const dir = tempDir(t, 'access-log')
  const plain = join(dir, 'plain')
  writeFileSync(plain, '')
  const cases: [string, string, string][] = [
    ['a directory that does not exist', join(dir, 'missing', 'access.log'), 'ENOENT'],
    ['a path under a file', join(plain, 'access.log'), 'ENOTDIR'],
    ['a directory', dir, 'EISDIR'],
  ]
  for (const [name, file, code] of cases) {
    for (const format of ['combined', 'json'] as const) {
      let thrown: unknown
      try {
        createAccessLog(format, file)
      } catch (err) {
        thrown = err
      }
      t.type(thrown, ConfigError, `${name}, ${format}: a ConfigError`)
      t.match(
        thrown,
        { code: 'SWITCHYARD_CONFIG', message: `access-log ${file}: cannot be opened for appending (${code})` },
        `${name}, ${format}: the message names the file and ${code}`,
      )
    }
  }
  t.notOk(existsSync(join(dir, 'missing')), 'nothing was created')
})

t.test('on stdout, flush() before process.exit gets every line out, and reopen() is a no-op', async t => {
  for (const format of ['combined', 'json'] as const) {
    const r = await child(`
      const log = createAccessLog(${JSON.stringify(format)}, '-')
      const entry = ${JSON.stringify(FULL)}
      log.write({ ...entry, path: '/one' })
      log.write({ ...entry, path: '/two' })
      log.reopen()
      log.flush()
      process.exit(0)
    `)
    t.equal(r.stderr, '', `${format}: nothing on stderr (reopen did not throw)`)
    t.equal(r.code, 0, `${format}: exit 0`)
    const lines = r.stdout.split('\n')
    t.equal(lines.pop(), '', `${format}: the output ends with a newline`)
    t.equal(lines.length, 2, `${format}: two lines`)
    for (const path of ['/one', '/two']) {
      const want = format === 'combined' ? lineOf(path) : `"path":"${path}"`
      t.equal(lines.filter(line => line.includes(want)).length, 1, `${format}: ${path} arrived once`)
    }
  }
})

t.test('on stdout, flush() before process.exit keeps the lines in order when the thread pool is busy', async t => {
  const fifo = join(tempDir(t, 'access-log'), 'fifo')
  const made = spawnSync('mkfifo', [fifo])
  t.equal(made.status, 0, 'mkfifo')
  const r = await child(
    `
    import { closeSync, constants, open, openSync } from 'node:fs'
    const fifo = ${JSON.stringify(fifo)}
    const log = createAccessLog('combined', '-')
    const entry = ${JSON.stringify(FULL)}
    open(fifo, 'r', () => {}) // holds the only pool thread until a writer opens the FIFO
    log.write({ ...entry, path: '/one' })
    log.write({ ...entry, path: '/two' })
    log.flush()
    for (;;) {
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK))
        break
      } catch (err) {
        if (err.code !== 'ENXIO') throw err // ENXIO: the pool has not started the open() yet
      }
    }
    process.exit(0)
  `,
    { ...process.env, UV_THREADPOOL_SIZE: '1' },
  )
  t.equal(r.code, 0, 'exit 0')
  t.equal(r.stdout, `${lineOf('/one')}\n${lineOf('/two')}\n`, '/one then /two')
})

t.test('a reopen() that fails does not kill the process', async t => {
  const dir = tempDir(t, 'access-log')
  const file = join(dir, 'logs', 'access.log')
  const r = await child(
    `
    import { mkdirSync, readFileSync, rmSync, stat } from 'node:fs'
    import { dirname } from 'node:path'
    const file = ${JSON.stringify(file)}
    mkdirSync(dirname(file))
    const log = createAccessLog('combined', file)
    log.write(${JSON.stringify(FULL)})
    while (readFileSync(file, 'utf8') === '') await new Promise(resolve => setImmediate(resolve))
    // With one pool thread, jobs finish in order: this stat ends after the write's callback.
    await new Promise(resolve => stat(file, resolve))
    rmSync(dirname(file), { recursive: true })
    log.reopen()
    // ... and this one after the reopen's open() has failed.
    await new Promise(resolve => stat(file, resolve))
    log.write(${JSON.stringify(FULL)})
    log.flush()
    console.log('alive')
    process.exit(0)
  `,
    { ...process.env, UV_THREADPOOL_SIZE: '1' },
  )
  t.equal(r.stdout, 'alive\n', 'still running and writing after the failed reopen')
  t.equal(r.code, 0, 'exit 0')
})
