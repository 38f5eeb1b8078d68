#!/usr/bin/env node
// The `switchyard` command: flags and config file, the process (one balancer, or a cluster of them), signals and exit codes.
import cluster from 'node:cluster'
import type { AddressInfo } from 'node:net'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { VERSION, unknownFlag } from './cli-flags.js'
import { AdminAuth } from './admin/auth.js'
import { GroupControl } from './admin/control.js'
import { AdminServer, localSource, type AdminSource } from './admin/server.js'
import { createBalancer, type Balancer } from './balancer.js'
import { Primary, type PrimaryOptions } from './cluster/primary.js'
import { joinCluster } from './cluster/worker.js'
import { readConfigFile } from './config/file.js'
import { resolveConfig, type HttpsSettings, type ResolvedConfig } from './config/resolve.js'
import { CONFIG_KEYS, SETTINGS, type SettingKey } from './config/settings.js'
import { ConfigError, errorCode } from './errors.js'
import { createAccessLog, type AccessLog } from './observe/access-log.js'
import { CertificateStore } from './server/certificate-store.js'
import { createResolver } from './upstreams/dns-lookup.js'
import { Discovery } from './upstreams/discovery.js'
import type { UpstreamGroup } from './upstreams/group.js'
import type { Pool } from './upstreams/pool.js'
import { StateFile, readStateFile } from './upstreams/state-file.js'

/** What SIGHUP reloads: a balancer, or a cluster's primary. */
interface Reloadable {
  readonly pool: Pool
  reload(options: PrimaryOptions): void
}

/** Signals that arrive within this long of the first are the same request to stop. */
const SAME_SIGNAL_MS = 1000

const print = (line: string): void => void process.stdout.write(`${line}\n`)

function parseArgs(argv: string[]): Record<string, unknown> {
  let y = yargs(argv)
    .scriptName('switchyard')
    .usage('$0 [options]\n\nSpreads HTTP requests over upstreams, with failover.')
    .option('config', { type: 'string', requiresArg: true, describe: 'JSON file with these settings by long name; flags override it' })
    // Taken only to be refused with a reason: a token on the command line shows in `ps`.
    .option('admin-token', { type: 'string', hidden: true })
  for (const key of CONFIG_KEYS) {
    const s: { describe: string; default: unknown; shown?: string; boolean?: true; array?: true } = SETTINGS[key]
    const shown =
      s.shown ?? (s.default === undefined ? (s.array ? 'none' : 'off') : Array.isArray(s.default) ? s.default.join(' ') : String(s.default))
    y = y.option(key, {
      type: s.boolean ? 'boolean' : 'string',
      array: s.array,
      requiresArg: !s.boolean,
      describe: `${s.describe} [default: ${shown}]`,
    })
  }
  return y
    .strict()
    .fail((msg: string, _err, y) => {
      throw new ConfigError(unknownFlag(msg, y, 'switchyard') ?? msg)
    })
    .help()
    .version('version', 'Show the version and exit', `switchyard ${VERSION}`)
    .parseSync()
}

/** One line a person can act on, for an error from `listen`. */
function listenError(err: Error, host: string, port: number, flag = '--port'): string {
  const where = `cannot listen on ${host}:${port}`
  const code = errorCode(err)
  if (code === 'EACCES') {
    return `${where}: permission denied (EACCES); ports below 1024 need root or \`sudo setcap cap_net_bind_service=+ep $(command -v node)\`, or use ${flag} 8080`
  }
  if (code === 'EADDRINUSE') return `${where}: the port is in use (EADDRINUSE); stop what holds it or choose another ${flag}`
  return `${where}: ${err.message}`
}

/** The access log a configuration asks for, or undefined when it is off. */
function accessLogOf(config: ResolvedConfig): AccessLog | undefined {
  return config.accessLogTo === undefined
    ? undefined
    : createAccessLog(config.logFormat, config.accessLogTo, line => print(`switchyard: ${line}`))
}

/** The access log in force; flushed before every exit, since it writes asynchronously. */
let access: AccessLog | undefined

function exit(code: number): never {
  access?.flush()
  process.exit(code)
}

/**
 * Starts the admin listener when `--admin-port` is set. A taken admin port is not worth
 * stopping the traffic for: it is reported, and the balancer goes on without it.
 */
function startAdmin(config: ResolvedConfig, source: AdminSource, runtime: Runtime): AdminServer | undefined {
  const { adminPort: port, adminHost: host } = config
  if (port === undefined) return undefined
  const control = new GroupControl(runtime.group, {
    status: () => source.status(),
    propagate: runtime.propagate,
    stateFile: runtime.stateFile,
  })
  const auth = new AdminAuth(config.adminToken, line => print(`switchyard: ${line}`))
  const admin = new AdminServer(source, { host, allowedHosts: config.adminAllowedHosts, auth, control })
  admin.once('error', err =>
    print(`switchyard: admin listener off, still serving traffic: ${listenError(err, host, port, '--admin-port')}`),
  )
  admin.listen(port, host, () => {
    const { port: bound } = admin.address() as AddressInfo
    const shown = host.includes(':') ? `[${host}]` : host
    print(`switchyard admin on http://${shown}:${bound}/ (dashboard; also /status.json, /metrics, /events)`)
  })
  return admin
}

/** What holds the upstreams' runtime state in this process: the group, its state file, and how a change reaches the workers. */
interface Runtime {
  group: UpstreamGroup
  stateFile: StateFile | undefined
  propagate?: () => Promise<void>
}

/**
 * Brings the runtime state back (`--state-file`) and starts DNS discovery for the `resolve` lines,
 * in the process that owns the upstreams' state (the only one, or a cluster's primary). Resolves
 * once every name had its first lookup, so that the balancer starts with the addresses it has.
 */
async function startRuntime(config: ResolvedConfig, group: UpstreamGroup): Promise<Runtime> {
  const stateFile = config.stateFile === undefined ? undefined : new StateFile(config.stateFile)
  const saved = stateFile === undefined ? undefined : readStateFile(stateFile.path)
  // Added `resolve` lines are watched too: restored before the names are looked up, and again after, for the states of what DNS found.
  if (saved !== undefined) group.restore(saved)
  if (config.upstreams.some(u => u.resolve === true) || group.runtime.added.length > 0) {
    const resolver = createResolver(config.resolver === undefined ? [] : [config.resolver])
    await group.discover(new Discovery({ resolver, interval: config.resolveInterval, log: line => print(`switchyard: ${line}`) }))
  }
  if (saved !== undefined) group.restore(saved)
  return { group, stateFile }
}

/** Saves the runtime state after a reload, which cleared what the admin API added and removed. */
function saveAfterReload(runtime: Runtime | undefined): void {
  runtime?.stateFile
    ?.save(runtime.group.runtime)
    .catch((err: NodeJS.ErrnoException) => print(`switchyard: state file not written: ${err.code}`))
}

/** The sticky secret a cluster's primary made up, handed to its workers so that they agree. */
const WORKER_SECRET = 'SWITCHYARD_STICKY_SECRET'

/** Reads the config file and the flags again, as SIGHUP asks; flags still win. */
function load(args: Record<string, unknown>): ResolvedConfig {
  const flags = Object.fromEntries(CONFIG_KEYS.map(key => [key, args[key]])) as Partial<Record<SettingKey, unknown>>
  const file = typeof args.config === 'string' ? readConfigFile(args.config) : {}
  const config = resolveConfig(flags, file)
  if (!cluster.isWorker) return config
  // A worker: the primary runs the active checks for all, and made the sticky secret up.
  config.health = undefined
  const secret = process.env[WORKER_SECRET]
  if (config.sticky !== undefined && config.stickySecretGenerated && secret !== undefined) {
    config.sticky = { ...config.sticky, secret }
    config.stickySecretGenerated = false
  }
  return config
}

/**
 * Stops on SIGTERM / SIGINT by `drain`, then exits 0; a second signal (not the same Ctrl-C
 * delivered twice) exits 1 at once, after `hurry`.
 */
function onStopSignals(config: ResolvedConfig, drain: () => Promise<void>, hurry: () => void = () => {}): (why: string) => void {
  let stopping = 0
  const stop = (why: string): void => {
    const now = Date.now()
    if (stopping !== 0) {
      // A Ctrl-C reaches this process from the terminal and, through the launcher, again.
      if (now - stopping < SAME_SIGNAL_MS) return
      print(`switchyard: ${why} again, exiting now`)
      hurry()
      exit(1)
    }
    stopping = now
    print(`switchyard: ${why}, draining for up to ${config.drainTimeout / 1000}s`)
    void drain().then(() => exit(0))
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  return stop
}

/** What the listening line says of one listener. */
const urlOf = (scheme: 'http' | 'https', host: string, port: number): string => `${scheme}://${host}:${port}`

/** The listening line: every listener's URL, the policy and the upstreams. */
function describe(config: ResolvedConfig, pool: Pool, ports: Ports): string {
  const urls: string[] = []
  if (ports.http !== undefined) urls.push(urlOf('http', config.host, ports.http) + (config.redirectHttps ? ' (redirecting to HTTPS)' : ''))
  if (ports.https !== undefined)
    urls.push(`${urlOf('https', config.host, ports.https)} (${(config.https as HttpsSettings).http2 ? 'h2, ' : ''}http/1.1)`)
  return `switchyard listening on ${urls.join(' and ')}, ${config.policy} over ${pool.upstreams.map(u => u.id).join(', ')}`
}

/** The ports the listeners bound, for the listening line. */
interface Ports {
  http?: number | undefined
  https?: number | undefined
}

/**
 * Opens the listeners a configuration asks for: the plain one (unless `--port off`, and
 * redirecting under --redirect-https) and the HTTPS one. Rejects with a line naming the flag.
 */
async function startListeners(balancer: Balancer, config: ResolvedConfig, certificates: CertificateStore | undefined): Promise<Ports> {
  const ports: Ports = {}
  const { https } = config
  // HTTPS first: --redirect-https needs its port, 0 included. (A cluster's primary reports the
  // first port its workers bind: the HTTPS one, when there is one.)
  if (https !== undefined) {
    const bound = await balancer
      .listenHttps(https.port, config.host, {
        certificates: certificates as CertificateStore,
        http2: https.http2,
        minVersion: https.minVersion,
      })
      .catch((err: Error) => Promise.reject(new Error(listenError(err, config.host, https.port, '--https-port'))))
    ports.https = bound.port
  }
  if (config.port !== undefined) {
    const port = config.port
    const bound = await balancer
      .listen(port, config.host, { redirectHttpsTo: config.redirectHttps ? ports.https : undefined })
      .catch((err: Error) => Promise.reject(new Error(listenError(err, config.host, port))))
    ports.http = bound.port
  }
  return ports
}

/**
 * The certificates of the HTTPS listener, read now: a file that cannot be served is one line
 * and exit 1 (the caller's); one that clients will refuse (expired) is a warning.
 */
function loadCertificates(config: ResolvedConfig): CertificateStore | undefined {
  if (config.https === undefined) return undefined
  const store = new CertificateStore(config.https.certificates, config.https.minVersion)
  for (const warning of store.warnings()) print(`switchyard: warning: ${warning}`)
  return store
}

/**
 * `--workers N`: this process forks the workers and watches them. It serves no traffic: it
 * runs the active checks, keeps the one view of health, and serves the admin listener with
 * every worker's counts added up.
 */
async function runPrimary(args: Record<string, unknown>, config: ResolvedConfig): Promise<void> {
  const env: Record<string, string> = config.stickySecretGenerated ? { [WORKER_SECRET]: (config.sticky as { secret: string }).secret } : {}
  // Checked here, before any worker starts: each worker reads them again for its own listener.
  loadCertificates(config)
  const primary = new Primary({ ...config, log: print, accessLog: undefined }, config.workers, env)
  const runtime = { ...(await startRuntime(config, primary.upstreams)), propagate: () => primary.share() }
  let admin: AdminServer | undefined
  primary.on('listening', (address: AddressInfo) => {
    // The workers' first listener is the HTTPS one, when there is one (startListeners).
    const ports = config.https === undefined ? { http: address.port } : { http: config.port, https: address.port }
    print(`${describe(config, primary.pool, ports)} (${config.workers} workers)`)
    admin = startAdmin(config, primary.source(), runtime)
  })
  primary.on('worker', (line: string) => print(`switchyard: ${line}`))
  primary.on('failed', (line: string) => {
    console.error(`switchyard: ${line}; stopping`)
    void primary.stop().then(() => exit(1))
  })
  primary.start()
  if (config.stickySecretGenerated) print(STICKY_WARNING)
  onStopSignals(
    config,
    () => {
      admin?.close()
      return primary.stop()
    },
    () => void primary.stop('SIGKILL'),
  )
  // The primary reads the config (its upstreams and checks); each worker does the whole contract.
  process.on('SIGHUP', () => {
    if (reload(primary, args, config, admin, false)) {
      saveAfterReload(runtime)
      void primary.share()
    }
    primary.signal('SIGHUP')
  })
}

const STICKY_WARNING =
  'switchyard: warning: no --sticky-secret or --sticky-secret-file; a random secret was made, so stickiness survives neither a restart nor a second instance'

/**
 * Applies the config file again; `logs`: whether this process writes access lines (a primary does
 * not). The admin listener, if there is one, takes the new `--admin-allowed-host` names at once.
 */
function reload(
  balancer: Reloadable,
  args: Record<string, unknown>,
  running: ResolvedConfig,
  admin: AdminServer | undefined,
  logs = true,
): boolean {
  if (typeof args.config !== 'string') {
    print('switchyard: SIGHUP: no --config file, so the configuration stays as started')
    return false
  }
  let next: ResolvedConfig
  const before = access
  try {
    next = load(args)
    if (logs && (next.accessLogTo !== running.accessLogTo || next.logFormat !== running.logFormat)) access = accessLogOf(next)
  } catch (err) {
    print(`switchyard: reload rejected, still running the old configuration: ${(err as Error).message}`)
    return false
  }
  if (
    next.port !== running.port ||
    next.host !== running.host ||
    next.adminPort !== running.adminPort ||
    next.adminHost !== running.adminHost ||
    JSON.stringify([next.https, next.redirectHttps]) !== JSON.stringify([running.https, running.redirectHttps])
  ) {
    print(`switchyard: a new host, port or HTTPS listener applies only after a restart; still on ${running.host}:${running.port}`)
  }
  // A new log closes the old; the same one was reopened already (reopenLog).
  if (access !== before) before?.close()
  // What a restart would change stays as it is in force; the rest (drain timeout, log) is the new.
  Object.assign(running, next, {
    port: running.port,
    host: running.host,
    adminPort: running.adminPort,
    adminHost: running.adminHost,
    https: running.https,
    redirectHttps: running.redirectHttps,
  })
  balancer.reload({ ...next, log: print, accessLog: access })
  // Already validated by load(): this cannot throw.
  admin?.allowHosts(next.adminAllowedHosts)
  print(`switchyard: reloaded ${args.config}: upstreams ${balancer.pool.upstreams.map(u => u.id).join(', ')}`)
  return true
}

/** SIGHUP's first part: the access log's file opened again (logrotate), in one line. */
function reopenLog(): void {
  const done = access?.reopen()
  if (done === 'reopened') print('switchyard: SIGHUP: access log reopened')
  else if (done === undefined) print('switchyard: SIGHUP: access log off, nothing to reopen')
  else if (done === 'stdout') print('switchyard: SIGHUP: access log on stdout, nothing to reopen')
  // 'failed' was told in its own line (accessLogOf's onError).
}

/** SIGHUP's second part: the certificate files read again, in one line (none without HTTPS). */
function reloadCertificates(balancer: Balancer): void {
  const result = balancer.reloadCertificates()
  if (result !== undefined) print(`switchyard: SIGHUP: ${result.line}`)
}

/** One balancer process: the only one, or a worker of `--workers N`. */
async function runBalancer(args: Record<string, unknown>, config: ResolvedConfig): Promise<void> {
  const certificates = loadCertificates(config)
  access = accessLogOf(config)
  const balancer = createBalancer({ ...config, log: print, accessLog: access })
  let admin: AdminServer | undefined
  // A worker's runtime state comes from its primary.
  const runtime = cluster.isWorker ? undefined : await startRuntime(config, balancer.upstreams)

  const failed = (err: Error): void => {
    console.error(`switchyard: ${err.message}`)
    exit(1)
  }
  if (cluster.isWorker) {
    // A worker listens once it knows the health the others have; it leaves the listening
    // line and the admin listener to its primary.
    const channel = {
      send: (m: unknown) => process.send?.(m),
      on: (event: 'message', listener: (m: unknown) => void) => process.on(event, listener),
    }
    void joinCluster(balancer, channel).then(() => startListeners(balancer, config, certificates).catch(failed))
  } else {
    startListeners(balancer, config, certificates).then(ports => {
      print(describe(config, balancer.pool, ports))
      admin = startAdmin(config, localSource(balancer), runtime as Runtime)
    }, failed)
  }
  if (config.stickySecretGenerated) print(STICKY_WARNING)

  const stop = onStopSignals(config, () => {
    admin?.close()
    return balancer.drain(config.drainTimeout)
  })
  // By default SIGHUP kills a Node process. Here it does three things, each on its own, each
  // with one line: the access log reopened, the certificates read again, the config read again.
  process.on('SIGHUP', () => {
    reopenLog()
    reloadCertificates(balancer)
    if (reload(balancer, args, config, admin)) saveAfterReload(runtime)
  })
  // Started by a launcher (or a cluster primary) with an IPC channel: if it dies, stop too.
  if (process.channel !== undefined) process.on('disconnect', () => stop('launcher gone'))
}

async function main(): Promise<void> {
  const args = parseArgs(hideBin(process.argv))
  if (args['admin-token'] !== undefined) {
    throw new ConfigError(
      'admin-token: a token on the command line shows in ps and in shell history; put it in a file for --admin-token-file, or in SWITCHYARD_ADMIN_TOKEN',
    )
  }
  const config = load(args)
  if (cluster.isPrimary && config.workers > 1) await runPrimary(args, config)
  else await runBalancer(args, config)
}

main().catch((err: Error) => {
  console.error(`switchyard: ${err.message}`)
  process.exit(1)
})
