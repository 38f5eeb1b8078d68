// The admin gate: where the token comes from, what each request gets (403, 401, through), and
// the failure log, once per address per minute, with a clock the test turns.
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { AdminAuth, FAILURE_LOG_MS, MIN_TOKEN_LENGTH, TOKEN_ENV, loadAdminToken } from '../../src/admin/auth.js'

const TOKEN = '0123456789abcdef0123456789abcdef'

t.test('the token comes from the file, else from the environment; there is no default', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-token-'))
  const file = join(dir, 'token')
  await writeFile(file, `${TOKEN}\n`)
  t.equal(loadAdminToken(file, { [TOKEN_ENV]: 'from-the-environment-0000' }), TOKEN, 'the file wins, without its newline')
  t.equal(loadAdminToken(undefined, { [TOKEN_ENV]: ` ${TOKEN} ` }), TOKEN, 'the environment, trimmed')
  t.equal(loadAdminToken(undefined, {}), undefined, 'neither: no token')
  t.throws(
    () => loadAdminToken(join(dir, 'missing'), {}),
    { name: 'ConfigError', message: /^admin-token-file .*missing: cannot be read \(ENOENT\)$/ },
    'a missing file',
  )
  await writeFile(file, 'short\n')
  t.throws(
    () => loadAdminToken(file, {}),
    {
      message: new RegExp(
        `^admin-token-file .*: the token has 5 characters; use at least ${MIN_TOKEN_LENGTH}, e.g. from \`openssl rand -hex 32\`$`,
      ),
    },
    'a short token, without showing it',
  )
  t.throws(
    () => loadAdminToken(undefined, { [TOKEN_ENV]: '' }),
    { message: `${TOKEN_ENV}: the token has 0 characters; use at least 16, e.g. from \`openssl rand -hex 32\`` },
    'an empty variable',
  )
  t.throws(
    () => loadAdminToken(undefined, { [TOKEN_ENV]: 'twenty characters with spaces' }),
    { message: `${TOKEN_ENV}: the token must be visible ASCII characters with no spaces` },
    'spaces',
  )
  t.throws(() => loadAdminToken(undefined, { [TOKEN_ENV]: `${TOKEN}é` }), { message: /visible ASCII/ }, 'non-ASCII')
  const before = process.env[TOKEN_ENV]
  process.env[TOKEN_ENV] = TOKEN
  t.teardown(() => {
    if (before === undefined) delete process.env[TOKEN_ENV]
    else process.env[TOKEN_ENV] = before
  })
  t.equal(loadAdminToken(undefined), TOKEN, 'the process environment by default')
})

const ask = (authorization: string | undefined, address = '127.0.0.1') => ({ authorization, address, what: 'POST /upstreams' })

t.test('no token configured: 403, saying how to set one', async t => {
  const auth = new AdminAuth(undefined)
  t.equal(auth.configured, false, 'not configured')
  const r = auth.check(ask(`Bearer ${TOKEN}`))
  t.same(
    r,
    {
      status: 403,
      message: `403 Forbidden: no admin token is set, so nothing may be changed; start the balancer with --admin-token-file FILE or the ${TOKEN_ENV} environment variable`,
      headers: {},
    },
    'any request',
  )
})

t.test('the right token passes; a wrong or missing one gets 401 with a Bearer challenge', async t => {
  const logs: string[] = []
  let now = 0
  const auth = new AdminAuth(
    TOKEN,
    line => logs.push(line),
    () => now,
  )
  t.equal(auth.configured, true, 'configured')
  t.equal(auth.check(ask(`Bearer ${TOKEN}`)), undefined, 'the right token')
  t.equal(auth.check(ask(`bearer   ${TOKEN} `)), undefined, 'the scheme in any case, with extra spaces (RFC 9110 §11.1)')
  const cases: [string | undefined, string][] = [
    [undefined, 'no Authorization header'],
    [`Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`, 'an Authorization header that is not "Bearer <token>"'],
    [`Bearer ${TOKEN} extra`, 'an Authorization header that is not "Bearer <token>"'],
    [`Bearer ${TOKEN.slice(1)}`, 'a wrong token'],
    [`Bearer ${TOKEN}0`, 'a wrong token'],
    ['Bearer x', 'a wrong token'],
  ]
  for (const [authorization, why] of cases) {
    t.same(
      auth.check(ask(authorization)),
      {
        status: 401,
        message: `401 Unauthorized: ${why}; send "Authorization: Bearer <token>" with the admin token`,
        headers: { 'www-authenticate': 'Bearer realm="switchyard-admin"' },
      },
      `${JSON.stringify(authorization)}: 401, ${why}`,
    )
  }
  t.equal(logs.length, 1, 'six failures from one address within a minute: one line')
  t.equal(
    logs[0],
    'admin: refused POST /upstreams from 127.0.0.1: no Authorization header; further failures from this address are logged once a minute',
    'naming the request, the address and why',
  )
  t.notOk(logs.join('\n').includes(TOKEN.slice(0, 8)), 'never a token')
  auth.check(ask('Bearer wrong-token-from-another', '10.0.0.9'))
  t.equal(logs.length, 2, 'another address gets its own line')
  now = FAILURE_LOG_MS - 1
  auth.check(ask(undefined))
  t.equal(logs.length, 2, 'still within the minute')
  now = FAILURE_LOG_MS
  auth.check(ask('Bearer nope-nope-nope-nope'))
  t.equal(
    logs[2],
    'admin: refused POST /upstreams from 127.0.0.1: a wrong token (and 6 more failed attempt(s) from it since the last line); further failures from this address are logged once a minute',
    'a minute later: a line, counting the quiet ones',
  )
  now = 3 * FAILURE_LOG_MS
  auth.check(ask(undefined))
  t.equal(
    logs[3],
    'admin: refused POST /upstreams from 127.0.0.1: no Authorization header; further failures from this address are logged once a minute',
    'none quiet since: no count',
  )
})

t.test('a flood of addresses is remembered within bounds, and still logged once a minute each', async t => {
  const logs: string[] = []
  let now = 0
  const auth = new AdminAuth(
    TOKEN,
    line => logs.push(line),
    () => now,
  )
  // More addresses than are remembered, all within one minute: the oldest are forgotten.
  for (let i = 0; i < 10_001; i++) auth.check(ask(undefined, `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`))
  t.equal(logs.length, 10_001, 'each address once')
  auth.check(ask(undefined, '10.0.0.0'))
  t.equal(logs.length, 10_002, 'the first, forgotten to bound the memory, is logged again')
  auth.check(ask(undefined, '10.0.39.16'))
  t.equal(logs.length, 10_002, 'the last is still remembered')
  now = FAILURE_LOG_MS
  auth.check(ask(undefined, '10.0.0.1'))
  t.equal(logs.length, 10_003, 'a minute later, a line again')
  const silent = new AdminAuth(TOKEN)
  t.equal(silent.check(ask(undefined))?.status, 401, 'without a log, failures are refused all the same')
})
