// The forwarder: the settings a reload changes (policy, agent, queue) and what every request shares (recorder, health).
import { createServer } from 'node:http'
import t from 'tap'
import { Forwarder } from '../../src/forward/forwarder.js'
import { RequestRecorder } from '../../src/observe/recorder.js'
import { DEFAULTS } from '../../src/options.js'
import { UpstreamGroup } from '../../src/upstreams/group.js'
import type { HealthChange } from '../../src/upstreams/upstream.js'
import { closedPort, fetchText, serve, startUpstream } from '../fixtures/servers.js'

const specOf = (s: string) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })

t.test('configure(): the policy keeps its state unless it changed; a new idle time makes a new agent; the queue follows', async t => {
  const upstreams = [specOf('127.0.0.1:1'), specOf('127.0.0.1:2')]
  const group = new UpstreamGroup()
  group.configure({ upstreams })
  const forwarder = new Forwarder({ upstreams }, group.pool, new RequestRecorder(), group.report)
  const { policy, agent, ...rest } = forwarder.settings
  t.equal(forwarder.policyName, 'round-robin', 'round-robin by default')
  t.match(
    rest,
    {
      connectTimeout: DEFAULTS.connectTimeout,
      timeout: DEFAULTS.timeout,
      retries: Infinity,
      retryTimeout: 0,
      tunnelTimeout: DEFAULTS.tunnelTimeout,
      sticky: undefined,
    },
    'the defaults',
  )
  forwarder.configure({ upstreams, queueSize: 5, queueTimeout: 100, timeout: 7 })
  t.equal(forwarder.settings.policy, policy, 'the same policy: kept, with its round-robin position')
  t.equal(forwarder.agent, agent, 'the same idle time: the same agent, and its pooled connections')
  t.same([forwarder.queue.size, forwarder.queue.timeout, forwarder.settings.timeout], [5, 100, 7], 'the new queue bounds and timeouts')
  forwarder.configure({ upstreams, policy: 'hash', hashKey: { kind: 'path' } })
  t.not(forwarder.settings.policy, policy, 'a new policy starts afresh')
  t.equal(forwarder.policyName, 'hash', 'named')
  const hash = forwarder.settings.policy
  forwarder.configure({ upstreams, policy: 'hash', hashKey: { kind: 'ip' } })
  t.not(forwarder.settings.policy, hash, 'so does a new hash key')
  forwarder.configure({ upstreams, upstreamIdleTimeout: 1000 })
  t.not(forwarder.agent, agent, 'a new idle time: a new agent')
  forwarder.configure({ upstreams, sticky: { cookie: 'lb', secret: 'k' } })
  t.equal(forwarder.settings.sticky?.cookie, 'lb', 'sticky cookies when configured')
})

t.test('forward() and refuse(): each request is recorded once, and what a request saw of health reaches the group', async t => {
  const good = await startUpstream(t, 'good')
  const dead = await closedPort()
  const group = new UpstreamGroup()
  group.configure({ upstreams: [specOf(dead), specOf(good.spec)] })
  const changes: HealthChange[] = []
  group.on('health', (c: HealthChange) => changes.push(c))
  const recorder = new RequestRecorder()
  const forwarder = new Forwarder({ upstreams: [] }, group.pool, recorder, group.report)
  const port = await serve(
    t,
    createServer((req, res) => {
      if (req.url === '/refuse') forwarder.refuse(req, res, 400, '400 Bad Request: test')
      else forwarder.forward(req, res)
    }),
  )
  t.equal((await fetchText(port)).body, 'hello from good\n', 'forwarded, past the dead upstream')
  const refused = await fetchText(port, { path: '/refuse' })
  t.same(
    [refused.status, refused.body, refused.headers.connection],
    [400, '400 Bad Request: test\n', 'close'],
    'refused: the answer, and the connection closes',
  )
  t.same(recorder.totals.byMethod.get('GET'), [0, 1, 0, 1, 0], 'both counted in the totals')
  t.same(recorder.unrouted.byMethod.get('GET'), [0, 0, 0, 1, 0], 'the refusal as the balancer’s own answer')
  t.same(
    changes.map(c => [c.upstream.id, c.up]),
    [[dead, false]],
    'the dead upstream’s failure reached the group',
  )
})
