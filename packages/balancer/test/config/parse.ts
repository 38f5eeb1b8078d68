import t from 'tap'
import { parseUpstream } from '../../src/index.js'

t.test('server-line parameters and config-file objects', async t => {
  const cases: [unknown, object][] = [
    ['127.0.0.1:5000 weight=3 max_fails=2 fail_timeout=5s', { host: '127.0.0.1', port: 5000, weight: 3, maxFails: 2, failTimeout: 5000 }],
    ['b:1 backup', { host: 'b', port: 1, backup: true }],
    ['b:1 down max_conns=10 slow_start=30s', { host: 'b', port: 1, down: true, maxConns: 10, slowStart: 30_000 }],
    [{ address: '127.0.0.1:5000', weight: 3 }, { host: '127.0.0.1', port: 5000, weight: 3 }],
    [{ address: 'b:1', backup: true, down: false, fail_timeout: '2s', max_conns: 4 }, { host: 'b', port: 1, backup: true, failTimeout: 2000, maxConns: 4 }],
  ]
  for (const [spec, want] of cases) t.same(parseUpstream(spec), want, JSON.stringify(spec))
})

t.test('bad parameters are named', async t => {
  const cases: [unknown, RegExp][] = [
    ['a:1 weight=0', /^upstream a:1 weight: "0" is not a whole number from 1/],
    ['a:1 backup=yes', /^upstream a:1: unknown parameter "backup=yes" \(allowed: weight=N, .*backup, down\)$/],
    ['a:1 slow_start=soon', /^upstream a:1 slow_start: "soon" is not a duration/],
    ['a:1 max_conns=-1', /^upstream a:1 max_conns: "-1" is not a whole number/],
    [{ weight: 3 }, /^upstream: \{"weight":3\} has no "address"/],
    [{ address: 'a:1', weigth: 3 }, /^upstream a:1: unknown key "weigth" \(allowed: address, weight=N/],
    [[1], /^upstream: \[1\] is not a string/],
    [null, /^upstream: null is not a string/],
  ]
  for (const [spec, message] of cases) t.throws(() => parseUpstream(spec), { name: 'ConfigError', message }, JSON.stringify(spec))
})
