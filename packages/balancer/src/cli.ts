#!/usr/bin/env node
// The `switchyard` command: flags and config file, the process (one balancer, or a cluster of them), signals and exit codes.
import cluster from 'node:cluster'
import type { AddressInfo } from 'node:net'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { AdminAuth } from './admin/auth.js'
import { GroupControl } from './admin/control.js'
import { AdminServer, localSource, type AdminSource } from './admin/server.js'
import { createBalancer } from './balancer.js'
import { Primary, type PrimaryOptions } from './cluster/primary.js'
import { joinCluster } from './cluster/worker.js'
import { readConfigFile } from './config/file.js'
import { resolveConfig, type ResolvedConfig } from './config/resolve.js'
import { CONFIG_KEYS, SETTINGS, type SettingKey } from './config/settings.js'
import { ConfigError, errorCode } from './errors.js'
import { createAccessLog, type AccessLog } from './observe/access-log.js'
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
    const s: { describe: string; default: unknown; boolean?: true; array?: true } = SETTINGS[key]
    const shown = s.default === undefined ? (s.array ? 'none' : 'off') : Array.isArray(s.default) ? s.default.join(' ') : String(s.default)
    y = y.option(key, {
      type: s.boolean ? 'boolean' : 'string',
      array: s.array,
      requiresArg: !s.boolean,
      describe: `${s.describe} [default: ${shown}]`,
    })
  }
  return y
    .strict()
    .fail((msg: string) => {
      throw new ConfigError(msg)
    })
    .help()
    .version(false)
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

const describe = (config: ResolvedConfig, pool: Pool, port: number): string =>
  `switchyard listening on http://${config.host}:${port}, ${config.policy} over ${pool.upstreams.map(u => u.id).join(', ')}`

/**
 * `--workers N`: this process forks the workers and watches them. It serves no traffic: it
 * runs the active checks, keeps the one view of health, and serves the admin listener with
 * every worker's counts added up.
 */
async function runPrimary(args: Record<string, unknown>, config: ResolvedConfig): Promise<void> {
  const env: Record<string, string> = config.stickySecretGenerated ? { [WORKER_SECRET]: (config.sticky as { secret: string }).secret } : {}
  const primary = new Primary({ ...config, log: print, accessLog: undefined }, config.workers, env)
  const runtime = { ...(await startRuntime(config, primary.upstreams)), propagate: () => primary.share() }
  let admin: AdminServer | undefined
  primary.on('listening', (address: AddressInfo) => {
    print(`${describe(config, primary.pool, address.port)} (${config.workers} workers)`)
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
    print('switchyard: SIGHUP ignored: there is no --config file to read again')
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
    next.adminHost !== running.adminHost
  ) {
    print(`switchyard: a new host or port applies only after a restart; still on ${running.host}:${running.port}`)
  }
  // The same log: open its file again, for logrotate (nginx does this on USR1). A new one:
  // close the old.
  if (access === before) access?.reopen()
  else before?.close()
  // What a restart would change stays as it is in force; the rest (drain timeout, log) is the new.
  Object.assign(running, next, { port: running.port, host: running.host, adminPort: running.adminPort, adminHost: running.adminHost })
  balancer.reload({ ...next, log: print, accessLog: access })
  // Already validated by load(): this cannot throw.
  admin?.allowHosts(next.adminAllowedHosts)
  print(`switchyard: reloaded ${args.config}: upstreams ${balancer.pool.upstreams.map(u => u.id).join(', ')}`)
  return true
}

/** One balancer process: the only one, or a worker of `--workers N`. */
async function runBalancer(args: Record<string, unknown>, config: ResolvedConfig): Promise<void> {
  access = accessLogOf(config)
  const balancer = createBalancer({ ...config, log: print, accessLog: access })
  let admin: AdminServer | undefined
  // A worker's runtime state comes from its primary.
  const runtime = cluster.isWorker ? undefined : await startRuntime(config, balancer.upstreams)

  const failed = (err: Error): void => {
    console.error(`switchyard: ${listenError(err, config.host, config.port)}`)
    exit(1)
  }
  if (cluster.isWorker) {
    // A worker listens once it knows the health the others have; it leaves the listening
    // line and the admin listener to its primary.
    const channel = {
      send: (m: unknown) => process.send?.(m),
      on: (event: 'message', listener: (m: unknown) => void) => process.on(event, listener),
    }
    void joinCluster(balancer, channel).then(() => balancer.listen(config.port, config.host).catch(failed))
  } else {
    balancer.listen(config.port, config.host).then(address => {
      print(describe(config, balancer.pool, address.port))
      admin = startAdmin(config, localSource(balancer), runtime as Runtime)
    }, failed)
  }
  if (config.stickySecretGenerated) print(STICKY_WARNING)

  const stop = onStopSignals(config, () => {
    admin?.close()
    return balancer.drain(config.drainTimeout)
  })
  // By default SIGHUP kills a Node process; here it re-reads the configuration.
  process.on('SIGHUP', () => {
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
