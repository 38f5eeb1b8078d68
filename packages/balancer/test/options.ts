// The library's defaults are the CLI's: one table each, which must agree.
import t from 'tap'
import { resolveConfig } from '../src/config/resolve.js'
import { DEFAULTS, POLICY_NAMES } from '../src/options.js'

t.test('every default of createBalancer is the CLI default of the same setting', async t => {
  const cli = resolveConfig({})
  for (const [key, value] of Object.entries(DEFAULTS)) {
    // The CLI leaves --retries unset: each upstream once, as Infinity does.
    const want = key === 'retries' ? (cli.retries ?? Number.POSITIVE_INFINITY) : cli[key as keyof typeof cli]
    t.equal(value, want, `${key}: ${String(value)}`)
  }
  t.ok(POLICY_NAMES.includes(DEFAULTS.policy), 'the default policy is one of the policies')
})
