// The group's runtime side on its own: admin states, additions and removals, `resolve` lines fed by a real DNS server,
// snapshots and state-file restores; and desiredSpecs as a table.

import { join } from 'node:path'
import t from 'tap'
import { GroupControl } from '../../src/admin/control.js'
import { createResolver } from '../../src/upstreams/dns-lookup.js'
import { Discovery } from '../../src/upstreams/discovery.js'
import { RuntimeError, UpstreamGroup } from '../../src/upstreams/group.js'
import { desiredSpecs } from '../../src/upstreams/runtime.js'
import { StateFile } from '../../src/upstreams/state-file.js'
import { startDnsStub } from '../fixtures/dns-stub.js'
import type { StatusSnapshot, UpstreamStatus } from '../../src/observe/status.js'
import { tempDir } from '../fixtures/temp.js'

const ids = (g: UpstreamGroup): string[] => g.pool.upstreams.map(u => u.id)

t.test('desiredSpecs: configured less removed, then added; resolve lines stand for what DNS found', async t => {
  const found = new Map([
    [
      'app.test:80',
      [
        { address: '10.0.0.2', port: 80, weight: undefined, backup: false },
        { address: '10.0.0.1', port: 80, weight: 3, backup: true },
      ],
    ],
  ])
  const specs = desiredSpecs(
    [
      { host: '10.0.0.1', port: 80 },
      { host: 'app.test', port: 80, resolve: true, weight: 2 },
      { host: 'gone.test', port: 80, resolve: true },
      { host: '10.0.0.9', port: 80 },
    ],
    [{ host: '10.0.0.5', port: 81 }],
    ['10.0.0.9:80'],
    found,
  )
  t.same(
    specs.map(s => [s.host, s.port, s.weight, s.backup, s.from]),
    [
      ['10.0.0.1', 80, undefined, undefined, undefined],
      ['10.0.0.2', 80, 2, false, 'app.test:80'],
      ['10.0.0.5', 81, undefined, undefined, undefined],
    ],
    'an address listed twice is kept where it first appears; a name with nothing found stands for nothing',
  )
})

t.test('desiredSpecs: a tls resolve line checks the certificates of what DNS found against its name', async t => {
  const found = new Map([['app.test:443', [{ address: '10.0.0.2', port: 443, weight: undefined, backup: false }]]])
  const [plain, named] = [{}, { servername: 'api.test' }].map(
    tls => desiredSpecs([{ host: 'app.test', port: 443, resolve: true, tls }], [], [], found)[0],
  )
  t.same(plain?.tls, { servername: 'app.test' }, 'the name looked up, not the address')
  t.same(named?.tls, { servername: 'api.test' }, 'tls_servername wins')
})

t.test('admin states, additions and removals; a reload makes the list the truth again', async t => {
  const g = new UpstreamGroup()
  const lines: string[] = []
  g.configure({
    upstreams: [
      { host: '127.0.0.1', port: 1 },
      { host: '127.0.0.1', port: 2, slowStart: 1000 },
    ],
    log: l => lines.push(l),
  })
  let changes = 0
  g.on('runtime', () => changes++)
  t.throws(() => g.setAdminState('127.0.0.1:9', 'drain'), new RuntimeError(404, '404 Not Found: no upstream 127.0.0.1:9'), 'an unknown id')
  g.setAdminState('127.0.0.1:2', 'maint')
  g.setAdminState('127.0.0.1:2', 'maint')
  t.same(g.runtime.adminStates, { '127.0.0.1:2': 'maint' }, 'kept in the runtime state')
  g.setAdminState('127.0.0.1:2', 'ready')
  t.same(g.runtime.adminStates, {}, 'ready is the default, not kept')
  t.same(
    lines,
    ['upstream 127.0.0.1:2: admin state maint', 'upstream 127.0.0.1:2: admin state ready, slow start over 1s'],
    'each change logged once, with slow start',
  )
  await t.rejects(g.add('nope'), { status: 400, message: /^400 Bad Request: upstream: "nope" is not host:port/ }, 'a bad line')
  await t.rejects(g.add('127.0.0.1:1'), { name: 'Error', status: 409 }, 'one that exists')
  t.same(
    (await g.add({ address: '127.0.0.1:3', weight: 2 })).map(u => [u.id, u.weight]),
    [['127.0.0.1:3', 2]],
    'an object',
  )
  await g.remove('127.0.0.1:1')
  t.same(g.runtime.removed, ['127.0.0.1:1'], 'a configured one removed is remembered')
  await g.add('127.0.0.1:1')
  t.same([g.runtime.removed, g.runtime.added], [[], [{ address: '127.0.0.1:3', weight: 2 }]], 'adding it back forgets the removal')
  await g.remove('127.0.0.1:3')
  t.same(g.runtime.added, [], 'an added one removed is forgotten')
  await t.rejects(g.remove('127.0.0.1:3'), { name: 'Error', status: 404 }, 'an unknown id')
  await g.add('127.0.0.1:4')
  g.setAdminState('127.0.0.1:4', 'drain')
  g.setAdminState('127.0.0.1:1', 'drain')
  await g.remove('127.0.0.1:2')
  t.same(ids(g), ['127.0.0.1:1', '127.0.0.1:4'], 'before the reload')
  g.configure({
    upstreams: [
      { host: '127.0.0.1', port: 1 },
      { host: '127.0.0.1', port: 2 },
    ],
  })
  t.same(ids(g), ['127.0.0.1:1', '127.0.0.1:2'], 'after it: the file list')
  t.same(g.runtime, { added: [], removed: [], adminStates: { '127.0.0.1:1': 'drain' } }, 'admin states of those that stay are kept')
  t.ok(changes >= 10, 'each change emitted runtime')

  const worker = new UpstreamGroup()
  worker.configure({ upstreams: [{ host: '127.0.0.1', port: 1 }] })
  worker.restore({ ...g.snapshot(), added: ['127.0.0.1:7'], found: { 'x.test:1': [] } })
  t.same(ids(worker), ['127.0.0.1:1', '127.0.0.1:7'], 'a snapshot applied whole')
  t.equal(worker.find('127.0.0.1:1')?.adminState, 'drain', 'with its admin states')
  worker.restore({ ...g.snapshot(), adminStates: {}, found: {} })
  t.equal(worker.find('127.0.0.1:1')?.adminState, 'ready', 'and a state no longer in the snapshot is ready again')
  t.same(
    desiredSpecs(
      [{ host: 'srv.test', port: 0, resolve: true, service: 'http', backup: true }],
      [],
      [],
      new Map([['srv.test service=http', [{ address: '10.0.0.3', port: 8080, weight: 4, backup: true }]]]),
    ).map(s => [s.host, s.port, s.weight, s.backup]),
    [['10.0.0.3', 8080, 4, true]],
    'a service line stands for its SRV answer',
  )
})

t.test('resolve lines: watched, added and removed at run time; an address DNS found cannot be removed by id', async t => {
  const dns = await startDnsStub(t)
  dns.zone.set('app.test', { a: ['127.0.0.2', '127.0.0.3'], ttl: 1 })
  dns.zone.set('more.test', { a: ['127.0.0.4'], ttl: 1 })
  const g = new UpstreamGroup()
  g.configure({ upstreams: [{ host: 'app.test', port: 80, resolve: true }] })
  const discovery = new Discovery({ resolver: createResolver([dns.server], 200, 1) })
  t.teardown(() => discovery.stop())
  await g.discover(discovery)
  t.same(ids(g), ['127.0.0.2:80', '127.0.0.3:80'], 'the addresses found')
  await t.rejects(
    g.remove('127.0.0.2:80'),
    { status: 409, message: '409 Conflict: 127.0.0.2:80 comes from the DNS name app.test:80; remove that line instead' },
    'not by id',
  )
  const added = await g.add('more.test:81 resolve')
  t.same(
    added.map(u => [u.id, u.from]),
    [['127.0.0.4:81', 'more.test:81']],
    'an added resolve line is looked up before the answer',
  )
  t.same(discovery.labels, ['app.test:80', 'more.test:81'], 'and watched')
  g.configure({ upstreams: [{ host: '127.0.0.1', port: 9 }] })
  t.same(discovery.labels, [], 'a reload without the lines stops watching them')
  t.same(ids(g), ['127.0.0.1:9'], 'and their addresses go')
  dns.zone.set('app.test', { a: ['127.0.0.5'], ttl: 1 })
  g.configure({ upstreams: [{ host: 'app.test', port: 80, resolve: true }] })
  await new Promise<void>(resolve => g.once('runtime', () => resolve()))
  t.same(ids(g), ['127.0.0.5:80'], 'a line added by a reload is looked up, and its answer taken')
})

t.test('the control: a change that cannot be saved is a 500 that says it holds', async t => {
  const g = new UpstreamGroup()
  g.configure({ upstreams: [{ host: '127.0.0.1', port: 1 }] })
  const status = (): Promise<StatusSnapshot> =>
    Promise.resolve({ upstreams: g.pool.upstreams.map(u => ({ id: u.id, adminState: u.adminState }) as UpstreamStatus) } as StatusSnapshot)
  const dir = tempDir(t, 'control')
  const control = new GroupControl(g, { status, stateFile: new StateFile(join(dir, 'missing', 'state.json')) })
  const o = await control.setState('127.0.0.1:1', 'drain')
  t.same(
    o,
    {
      ok: false,
      status: 500,
      message: `500 Internal Server Error: the change is in force, but the state file ${join(dir, 'missing', 'state.json')} could not be written (ENOENT)`,
    },
    'a 500',
  )
  t.equal(g.find('127.0.0.1:1')?.adminState, 'drain', 'and the change holds')
  const plain = new GroupControl(g, { status })
  const one = await plain.add('127.0.0.1:5')
  t.same(one.ok && one.upstream, { id: '127.0.0.1:5', adminState: 'ready' }, 'an address added answers with its object')
  t.same(await plain.add('127.0.0.1:5'), { ok: false, status: 409, message: '409 Conflict: upstream 127.0.0.1:5 exists' }, 'twice: 409')
  t.same(
    await plain.setState('127.0.0.1:9', 'drain'),
    { ok: false, status: 404, message: '404 Not Found: no upstream 127.0.0.1:9' },
    'a refused change',
  )
  const removed = await plain.remove('127.0.0.1:1')
  t.same(
    removed.ok && [removed.upstream.id, removed.upstream.state],
    ['127.0.0.1:1', 'draining'],
    'a removed one answers with its object, draining',
  )
})
