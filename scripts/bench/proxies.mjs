// The proxies under test: how each is configured and started. All listen on 127.0.0.1 and
// round-robin over the same two upstreams, with keep-alive to both the client and the upstreams.

import { spawnSync } from 'node:child_process'
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
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

/**
 * The cache rows: the path every request asks for (the backends answer it `Cache-Control: public,
 * max-age=600`), and the wrk script that makes each request of the miss row a new URL.
 */
export const CACHEABLE_PATH = '/cacheable'
export const MISS_PATH = '/miss/'
const MISS_SCRIPT = `-- Written by scripts/bench.mjs: every request a URL not asked for before, so each is a cache miss.
-- The prefix differs per wrk run (warm-up, each round, c=1), which would otherwise ask again for
-- the URLs an earlier run stored.
math.randomseed(os.time())
local prefix = "${MISS_PATH}" .. os.time() .. "-" .. math.random(1, 1000000000) .. "/"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, prefix .. n)
end
`

/** nginx's proxy_cache for the "nginx proxy_cache, hit" row: a zone on tmpfs, 200s kept 10 minutes. */
function nginxCache(cacheDir) {
  return `proxy_cache_path ${cacheDir} levels=1:2 keys_zone=bench:16m max_size=256m inactive=60m use_temp_path=off;`
}

/**
 * `tls`: { cert, key, http2 } for the HTTPS rows: TLS 1.2 and 1.3 with nginx's default ciphers,
 * no session cache (wrk and h2load resume no session anyway), HTTP/2 on that listener when asked.
 */
function nginxConfig(dir, port, backends, connections, tls, cacheDir) {
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
${cacheDir === undefined ? '' : `  ${nginxCache(cacheDir)}\n`}  upstream backends {
${backends.map(p => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 64;
    keepalive_requests ${NGINX_KEEPALIVE_REQUESTS};
  }
  server {
    listen 127.0.0.1:${port}${tls === undefined ? '' : ` ssl${tls.http2 ? ' http2' : ''}`};${
      tls === undefined
        ? ''
        : `
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;`
    }
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
${cacheDir === undefined ? '' : '      proxy_cache bench;\n      proxy_cache_valid 200 10m;\n'}    }
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
async function startWith(ctx, name, command, args, { pinned = true, tls = false } = {}) {
  const port = await freePort()
  const child = launch(name, command, args(port), { cwd: ctx.root, cpus: pinned ? ctx.proxyCpus : undefined })
  try {
    await waitReady(child, port, BODY, 10_000, tls)
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
  const startNginx = (id, tls, cacheDir) => () =>
    startWith(
      ctx,
      id,
      nginx,
      port => {
        const dir = join(ctx.dir, `nginx-${port}`)
        mkdirSync(dir, { recursive: true })
        writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, port, ctx.backends, ctx.connections, tls, cacheDir?.()))
        // -e: the error log before the config is read; the default one may not be writable.
        return ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'nginx-error.log')]
      },
      { tls: tls !== undefined },
    )
  const list = []
  if (nginx !== undefined) list.push({ id: 'nginx', label: 'nginx', start: startNginx('nginx') })
  if (nginx !== undefined) {
    // On tmpfs, as the issue asks: the figure is nginx's cache logic, not a disk. Removed at exit.
    const cacheDir = () => {
      const dir = mkdtempSync('/dev/shm/switchyard-bench-nginx-cache-')
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
      return dir
    }
    list.push({
      id: 'nginx-cache',
      label: 'nginx proxy_cache, hit',
      path: CACHEABLE_PATH,
      start: startNginx('nginx-cache', undefined, cacheDir),
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
  list.push({
    id: 'memory-hit',
    label: 'node:http memory hit (no library)',
    path: CACHEABLE_PATH,
    start: () =>
      startWith(ctx, 'memory-hit', process.execPath, port => [
        join(ctx.root, 'scripts/bench/memory-hit-peer.mjs'),
        String(port),
        ...targets.map(t => `http://${t}`),
      ]),
  })
  list.push({ id: 'switchyard', label: 'Switchyard', start: () => startWith(ctx, 'switchyard', process.execPath, switchyard(['--quiet'])) })
  // The edge cache (issue 14): every request a hit, then every request a miss (a new URL each time).
  list.push({
    id: 'switchyard-cache',
    label: 'Switchyard --cache, hit',
    path: CACHEABLE_PATH,
    start: () => startWith(ctx, 'switchyard-cache', process.execPath, switchyard(['--quiet', '--cache', '64mb'])),
  })
  list.push({
    id: 'switchyard-cache-miss',
    label: 'Switchyard --cache, miss',
    path: MISS_PATH,
    script: join(ctx.dir, 'miss.lua'),
    start: () => {
      writeFileSync(join(ctx.dir, 'miss.lua'), MISS_SCRIPT)
      return startWith(ctx, 'switchyard-cache-miss', process.execPath, switchyard(['--quiet', '--cache', '64mb']))
    },
  })
  // Other builds of Switchyard (--also label=cli.js), right after this one and run the same way. A
  // label ending in -h2 or -https is measured over that protocol, beside the TLS rows (tlsProxies).
  for (const { label, cli } of also.filter(a => !/-(h2|https)$/.test(a.label))) {
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
  if (ctx.tls !== undefined) list.push(...tlsProxies(ctx, { nginx, startNginx, switchyard, also }))
  return list
}

/**
 * The HTTPS and HTTP/2 rows (issue 15), each in a process of its own so that its CPU is its own:
 * HTTPS (HTTP/1.1) measured with wrk, h2 with h2load (`tool`), against nginx doing the same, and
 * the floor Node itself sets (tls-pipe-peer.mjs). `scheme` makes the URL https.
 */
function tlsProxies(ctx, { nginx, startNginx, switchyard, also }) {
  const { cert, key } = ctx.tls
  const targets = ctx.backends.map(p => `http://127.0.0.1:${p}`)
  const list = []
  const https = { scheme: 'https', tool: 'wrk' }
  const h2 = { scheme: 'https', tool: 'h2load' }
  if (nginx !== undefined) {
    list.push({ id: 'nginx-https', label: 'nginx HTTPS', ...https, start: startNginx('nginx-https', { cert, key, http2: false }) })
  }
  const pipe = mode => () =>
    startWith(
      ctx,
      `node-${mode}-pipe`,
      process.execPath,
      port => [join(ctx.root, 'scripts/bench/tls-pipe-peer.mjs'), mode, String(port), cert, key, ...targets],
      { tls: true },
    )
  list.push({ id: 'node-https-pipe', label: 'node:https pipe (no library)', ...https, start: pipe('https') })
  // Switchyard keeps its plain port beside the HTTPS one (unless --port off); the rows measure
  // the HTTPS one, with h2 offered as a user would run it.
  const startSwitchyard =
    (id, cli = ctx.cli) =>
    async () => {
      const port = await freePort()
      const started = await startWith(
        ctx,
        id,
        process.execPath,
        switchyard(['--quiet', '--https-port', String(port), '--tls-cert', cert, '--tls-key', key], cli),
      )
      try {
        await waitReady(started.child, port, BODY, 10_000, true)
      } catch (err) {
        started.child.kill('SIGKILL')
        throw err
      }
      return { ...started, port }
    }
  list.push({ id: 'switchyard-https', label: 'Switchyard HTTPS (HTTP/1.1)', ...https, start: startSwitchyard('switchyard-https') })
  for (const { label, cli } of also.filter(a => a.label.endsWith('-https')))
    list.push({ id: label, label: `Switchyard HTTPS (${label})`, also: true, ...https, start: startSwitchyard(label, cli) })
  if (ctx.h2load) {
    if (nginx !== undefined)
      list.push({ id: 'nginx-h2', label: 'nginx h2', ...h2, start: startNginx('nginx-h2', { cert, key, http2: true }) })
    list.push({ id: 'node-h2-pipe', label: 'node:http2 pipe (no library)', ...h2, start: pipe('h2') })
    list.push({ id: 'node-h2-stream-pipe', label: 'node:http2 stream pipe (core API)', ...h2, start: pipe('h2-stream') })
    list.push({ id: 'switchyard-h2', label: 'Switchyard h2', ...h2, start: startSwitchyard('switchyard-h2') })
    for (const { label, cli } of also.filter(a => a.label.endsWith('-h2')))
      list.push({ id: label, label: `Switchyard h2 (${label})`, also: true, ...h2, start: startSwitchyard(label, cli) })
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
