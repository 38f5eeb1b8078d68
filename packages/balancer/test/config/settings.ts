// The settings table: every flag is a config-file key of the same name, described, with its default.
import t from 'tap'
import { CONFIG_KEYS, SETTINGS } from '../../src/config/settings.js'
import { POLICY_NAMES } from '../../src/options.js'

t.test('one entry per setting, each described; the keys are the flags', async t => {
  t.same(CONFIG_KEYS, Object.keys(SETTINGS), 'CONFIG_KEYS lists every setting')
  for (const key of CONFIG_KEYS) t.ok(SETTINGS[key].describe.length > 10, `${key} is described`)
  t.match(SETTINGS.policy.describe, new RegExp(POLICY_NAMES.join(', ')), 'the policies are listed where --policy is')
  t.ok(
    CONFIG_KEYS.every(key => /^[a-z]+(-[a-z]+)*$/.test(key)),
    'long names in kebab case',
  )
})
