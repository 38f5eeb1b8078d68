import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { CLI, run } from './fixtures/cli.js'
import { tempDir } from './fixtures/temp.js'

t.test('bad input exits 1 with one line naming the bad value', async t => {
  const dir = tempDir(t, 'cli')
  const badJson = join(dir, 'bad.json')
  writeFileSync(badJson, '{"port": }')
  const cases: [string[], RegExp][] = [
    [['--bogus'], /^switchyard: unknown flag --bogus \(switchyard --help lists them\)$/],
    // The issue's own example: a close match is named.
    [['--polcy', 'hash'], /^switchyard: unknown flag --polcy; did you mean --policy\? \(switchyard --help lists them\)$/],
    [['-z'], /^switchyard: unknown flag -z \(switchyard --help lists them\)$/],
    [['--health-status', '600-700'], /^switchyard: health-status: "600-700" is not a status range like 200-399$/],
    [['--upstream', 'nope'], /^switchyard: upstream: "nope" is not host:port/],
    [['--port', '99999'], /^switchyard: port: "99999" is not a whole number from 0 to 65535$/],
    [['--port'], /^switchyard: Not enough arguments following: port$/],
    [['--config', join(dir, 'missing.json')], /^switchyard: config .*missing\.json: cannot be read \(ENOENT\)$/],
    [['--config', badJson], /^switchyard: config .*bad\.json: not valid JSON/],
  ]
  await Promise.all(
    cases.map(async ([args, message]) => {
      const r = run(args)
      t.equal(await r.exit, 1, `${args.join(' ')}: exit 1`)
      t.equal(r.stderr.length, 1, `${args.join(' ')}: one line`)
      t.match(r.stderr[0], message, `${args.join(' ')}: names the value`)
    }),
  )
})

t.test('listen failures exit 1 with one line that says what to do', async t => {
  const taken = createServer().listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const port = String((taken.address() as { port: number }).port)
  const inUse = run(['--host', '127.0.0.1', '--port', port])
  // 192.0.2.1 is TEST-NET-1: never a local address.
  const foreign = run(['--host', '192.0.2.1', '--port', '0'])
  // Ports below 1024 need CAP_NET_BIND_SERVICE. CI runs as root, so drop that capability
  // (util-linux setpriv) to be refused for real; anyone else is refused anyway.
  const node = [process.execPath, CLI, '--port', '81', '--host', '127.0.0.1']
  const argv = process.getuid?.() === 0 ? ['setpriv', '--bounding-set', '-net_bind_service', ...node] : node
  const low = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
  let lowErr = ''
  low.stderr.on('data', (d: Buffer) => (lowErr += d))
  const [lowCode] = await once(low, 'exit')
  t.equal(await inUse.exit, 1, 'in use: exit 1')
  t.match(inUse.stderr, [/^switchyard: cannot listen on 127\.0\.0\.1:\d+: the port is in use \(EADDRINUSE\)/], 'in use: one line')
  t.equal(await foreign.exit, 1, 'not a local address: exit 1')
  t.match(foreign.stderr, [/^switchyard: cannot listen on 192\.0\.2\.1:0: .*EADDRNOTAVAIL/], 'not local: one line')
  t.equal(lowCode, 1, 'port 81 without the privilege: exit 1')
  t.match(
    lowErr,
    /^switchyard: cannot listen on 127\.0\.0\.1:81: permission denied \(EACCES\); .*setcap cap_net_bind_service/,
    'EACCES says why and what to do',
  )
  t.equal(lowErr.trim().split('\n').length, 1, 'EACCES: one line')
})

t.test('--help lists every setting with its default', async t => {
  const r = run(['--help'])
  t.equal(await r.exit, 0, 'exit 0')
  const help = r.stdout.join(' ').replace(/\s+/g, ' ')
  t.match(help, /--upstream An upstream.*?repeat for more \[default: 127\.0\.0\.1:5000 127\.0\.0\.1:5001\]/, 'upstream default')
  t.match(help, /--health-path [^[]*\[default: off\]/, 'a setting that is off by default')
  t.match(help, /--connect-timeout [^[]*\[default: 5s\]/, 'a duration default')
  // What happens without a value, said once: no "default: …" in the text contradicting "[default: off]".
  t.match(help, /--retries Most further tries after the first \[default: each upstream once\]/, 'retries: what happens by default')
  t.match(help, /--sticky-secret [^[]*\[default: a random one per start, with a warning\]/, 'a sticky secret is made when none is given')
  t.notMatch(help, /default: [^\]]*\[default:/, 'no setting states two defaults')
  t.match(help, /--version Show the version and exit/, '--version is listed')
})

t.test('--version prints the name and the version', async t => {
  const r = run(['--version'])
  t.equal(await r.exit, 0, 'exit 0')
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  t.same(r.stdout, [`switchyard ${version}`], 'one line')
})
