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
      'QueueFullError',
      'RedisUnavailableError',
      'RequestStats',
      'ResponseCache',
      'SharedResponseCache',
      'WS_PATH',
      'WebSocketEcho',
      'createBackend',
      'createWorker',
      'entrySize',
      'isStorable',
      'listeningUrl',
      'liveJson',
      'parseId',
      'parseSize',
      'parseWholeNumber',
      'pathOf',
      'report',
      'resolveCliConfig',
      'resolveOptions',
      'text',
    ],
    'every runtime export, and nothing else',
  )
  t.equal(typeof backend.createBackend, 'function', 'createBackend is a function')
})
