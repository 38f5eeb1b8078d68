// The proxies under test: how each is configured and started. All listen on 127.0.0.1 and
// round-robin over the same two upstreams, with keep-alive to both the client and the upstreams.

import { spawnSync } from 'node:child_process'
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { freePort, launch, waitReady } from './children.mjs'

export const BODY = 'Hello, World!\n'
/**
 * Requests per client or upstream connection before nginx closes it (default 1000 since 1.19.10).
 * Node, HAProxy and Switchyard do not cap it, so without this nginx alone would pay for reconnects.
 */
const NGINX_KEEPALIVE_REQUESTS = 1_000_000

/** Absolute path of an executable on PATH or in the sbin directories a non-root PATH lacks. */
export function which(name) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin']
  for (const dir of dirs.filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK)
      return join(dir, name)
    } catch {
      // Not here, or not executable: the next directory.
    }
  }
  return undefined
}

/** First line of `cmd args` (stdout or stderr), for the machine info. */
export function versionOf(cmd, args) {
  if (cmd === undefined) return null
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 })
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] || null
}

function nginxConfig(dir, port, backends, connections) {
  const temp = name => `${join(dir, name)}`
  for (const name of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(temp(name), { recursive: true })
  return `# Written by scripts/bench.mjs; the bench's baseline, as a tuned production nginx would run.
worker_processes 1;
daemon off;
master_process on;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'nginx-error.log')} warn;
events { worker_connections ${Math.max(4096, connections * 2 + 256)}; }
http {
  access_log off;
  client_body_temp_path ${temp('client_body')};
  proxy_temp_path ${temp('proxy')};
  fastcgi_temp_path ${temp('fastcgi')};
  uwsgi_temp_path ${temp('uwsgi')};
  scgi_temp_path ${temp('scgi')};
  keepalive_requests ${NGINX_KEEPALIVE_REQUESTS};
  upstream backends {
${backends.map(p => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 64;
    keepalive_requests ${NGINX_KEEPALIVE_REQUESTS};
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`
}

function haproxyConfig(port, backends) {
  return `# Written by scripts/bench.mjs.
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend bench
  bind 127.0.0.1:${port}
  default_backend backends
backend backends
  balance roundrobin
  http-reuse always
${backends.map((p, i) => `  server s${i + 1} 127.0.0.1:${p}`).join('\n')}
`
}

/**
 * Starts one proxy; resolves with { child, port } once it forwards. `ctx`: { root, dir, backends,
 * connections, cli }. Throws with one line when it cannot start.
 */
async function startWith(ctx, name, command, args, { pinned = true } = {}) {
  const port = await freePort()
  const child = launch(name, command, args(port), { cwd: ctx.root, cpus: pinned ? ctx.proxyCpus : undefined })
  try {
    await waitReady(child, port, BODY)
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
  return { child, port }
}

/** The proxies to measure, in table order; the first present one of nginx/http-proxy is the baseline. */
export function proxies(ctx, { nginx, haproxy, workers, also = [] }) {
  const targets = ctx.backends.map(p => `127.0.0.1:${p}`)
  const switchyard =
    (extra, cli = ctx.cli) =>
    port => [cli, '--port', String(port), '--host', '127.0.0.1', ...targets.flatMap(t => ['--upstream', t]), ...extra]
  const list = []
  if (nginx !== undefined) {
    list.push({
      id: 'nginx',
      label: 'nginx',
      start: () =>
        startWith(ctx, 'nginx', nginx, port => {
          const dir = join(ctx.dir, `nginx-${port}`)
          mkdirSync(dir, { recursive: true })
          writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, port, ctx.backends, ctx.connections))
          // -e: the error log before the config is read; the default one may not be writable.
          return ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'nginx-error.log')]
        }),
    })
  }
  if (haproxy !== undefined) {
    list.push({
      id: 'haproxy',
      label: 'HAProxy',
      start: () =>
        startWith(ctx, 'haproxy', haproxy, port => {
          const file = join(ctx.dir, `haproxy-${port}.cfg`)
          writeFileSync(file, haproxyConfig(port, ctx.backends))
          // -db: foreground, no master process; the pid we hold is the one that proxies.
          return ['-db', '-f', file]
        }),
    })
  }
  list.push({
    id: 'http-proxy',
    label: 'http-proxy (stock Node)',
    start: () =>
      startWith(ctx, 'http-proxy', process.execPath, port => [
        join(ctx.root, 'scripts/bench/http-proxy-peer.mjs'),
        String(port),
        ...targets.map(t => `http://${t}`),
      ]),
  })
  list.push({
    id: 'node-pipe',
    label: 'node:http pipe (no library)',
    start: () =>
      startWith(ctx, 'node-pipe', process.execPath, port => [
        join(ctx.root, 'scripts/bench/pipe-peer.mjs'),
        String(port),
        ...targets.map(t => `http://${t}`),
      ]),
  })
  list.push({ id: 'switchyard', label: 'Switchyard', start: () => startWith(ctx, 'switchyard', process.execPath, switchyard(['--quiet'])) })
  // Other builds of Switchyard (--also label=cli.js), right after this one and run the same way.
  for (const { label, cli } of also) {
    list.push({
      id: label,
      label: `Switchyard (${label})`,
      also: true,
      start: () => startWith(ctx, label, process.execPath, switchyard(['--quiet'], cli)),
    })
  }
  list.push({
    id: 'switchyard-features',
    label: 'Switchyard +admin +access log',
    start: () =>
      startWith(
        ctx,
        'switchyard-features',
        process.execPath,
        switchyard(['--admin-port', '0', '--access-log', join(ctx.dir, 'access.log')]),
      ),
  })
  // What each feature costs, one at a time, against the Switchyard row: passive health off
  // (max_fails 0: no failure counting, no down state), and the policies with more to do per request.
  list.push({
    id: 'switchyard-no-passive',
    label: 'Switchyard --max-fails 0',
    start: () => startWith(ctx, 'switchyard-no-passive', process.execPath, switchyard(['--quiet', '--max-fails', '0'])),
  })
  list.push({
    id: 'switchyard-least',
    label: 'Switchyard --policy least-requests',
    start: () => startWith(ctx, 'switchyard-least', process.execPath, switchyard(['--quiet', '--policy', 'least-requests'])),
  })
  // wrk's connections all come from 127.0.0.1, so hashing the client IP sends all of them to one
  // upstream: this row is the cost of hashing, not of spreading.
  list.push({
    id: 'switchyard-hash',
    label: 'Switchyard --policy hash',
    start: () => startWith(ctx, 'switchyard-hash', process.execPath, switchyard(['--quiet', '--policy', 'hash'])),
  })
  if (workers) {
    // Not pinned: two workers on one core would measure nothing a worker is for.
    list.push({
      id: 'switchyard-workers',
      label: 'Switchyard --workers 2 (not pinned)',
      start: () => startWith(ctx, 'switchyard-workers', process.execPath, switchyard(['--quiet', '--workers', '2']), { pinned: false }),
    })
  }
  return list
}

/** Switchyard alone, quiet, for the memory phase. */
export function startSwitchyard(ctx) {
  return startWith(ctx, 'switchyard-memory', process.execPath, port => [
    ctx.cli,
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    ...ctx.backends.flatMap(p => ['--upstream', `127.0.0.1:${p}`]),
    '--quiet',
  ])
}
