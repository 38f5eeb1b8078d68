import t from 'tap'
import * as backend from '../src/index.js'

t.test('the package entry re-exports the public API', async t => {
  t.same(
    Object.keys(backend).sort(),
    [
      'Backend',
      'BodyBudget',
      'BodyBudgetError',
      'BodyTooLargeError',
      'CLI_KEYS',
      'ConfigError',
      'RequestStats',
      'ResponseCache',
      'WS_PATH',
      'WebSocketEcho',
      'createBackend',
      'entrySize',
      'isStorable',
      'listeningUrl',
      'liveJson',
      'parseId',
      'parseSize',
      'parseWholeNumber',
      'pathOf',
      'resolveCliConfig',
      'resolveOptions',
      'text',
    ],
    'every runtime export, and nothing else',
  )
  t.equal(typeof backend.createBackend, 'function', 'createBackend is a function')
})
