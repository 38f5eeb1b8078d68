// The admin states as a table: what each lets through, and what each change means (HAProxy's
// `set server state`).
import t from 'tap'
import {
  ADMIN_STATES,
  describeAdminState,
  isAdminState,
  isChecked,
  parseAdminState,
  takesNewClients,
  takesPinnedClients,
  transition,
  type AdminState,
} from '../../src/upstreams/admin-state.js'

t.test('what each state lets through', async t => {
  const table: [AdminState, boolean, boolean, boolean][] = [
    // state, new clients, sticky clients, health checks
    ['ready', true, true, true],
    ['drain', false, true, true],
    ['maint', false, false, false],
  ]
  t.same(
    ADMIN_STATES,
    table.map(r => r[0]),
    'the three states, in order',
  )
  for (const [state, fresh, pinned, checked] of table) {
    t.equal(takesNewClients(state), fresh, `${state}: new clients ${fresh}`)
    t.equal(takesPinnedClients(state), pinned, `${state}: sticky clients ${pinned}`)
    t.equal(isChecked(state), checked, `${state}: health checks ${checked}`)
  }
})

t.test('each change between two states', async t => {
  const table: [AdminState, AdminState, boolean, boolean, boolean][] = [
    // from, to, changed, slow start, checks resume
    ['ready', 'ready', false, false, false],
    ['ready', 'drain', true, false, false],
    ['ready', 'maint', true, false, false],
    ['drain', 'ready', true, true, false],
    ['drain', 'drain', false, false, false],
    ['drain', 'maint', true, false, false],
    ['maint', 'ready', true, true, true],
    ['maint', 'drain', true, false, true],
    ['maint', 'maint', false, false, false],
  ]
  for (const [from, to, changed, slowStart, resumeChecks] of table) {
    t.same(transition(from, to), { changed, slowStart, resumeChecks }, `${from} -> ${to}`)
  }
})

t.test('parsing and words', async t => {
  for (const s of ADMIN_STATES) t.equal(parseAdminState(s, 'state'), s, `${s} parses`)
  for (const bad of ['READY', 'down', '', 1, null, undefined]) {
    t.notOk(isAdminState(bad), `${JSON.stringify(bad)} is no state`)
    t.throws(
      () => parseAdminState(bad, 'state'),
      { name: 'ConfigError', message: /^state: .* is not one of ready, drain, maint$/ },
      `${JSON.stringify(bad)} is refused`,
    )
  }
  t.match(describeAdminState('drain'), /^draining \(admin API\): no new clients/, 'drain explained')
  t.match(describeAdminState('maint'), /^in maintenance \(admin API\): no requests, no health checks$/, 'maint explained')
})
