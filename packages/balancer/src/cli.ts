#!/usr/bin/env node
import type { AddressInfo } from 'node:net'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { createAccessLog, type AccessLog } from './access-log.js'
import { createAdmin, type AdminServer } from './admin.js'
import { createBalancer, type Balancer } from './balancer.js'
import { CONFIG_KEYS, SETTINGS, readConfigFile, resolveConfig, type ResolvedConfig, type SettingKey } from './config.js'
import { ConfigError, errorCode } from './errors.js'

/** Signals that arrive within this long of the first are the same request to stop. */
const SAME_SIGNAL_MS = 1000

const print = (line: string): void => void process.stdout.write(`${line}\n`)

function parseArgs(argv: string[]): Record<string, unknown> {
  let y = yargs(argv)
    .scriptName('switchyard')
    .usage('$0 [options]\n\nSpreads HTTP requests over upstreams, with failover.')
    .option('config', { type: 'string', requiresArg: true, describe: 'JSON file with these settings by long name; flags override it' })
  for (const key of CONFIG_KEYS) {
    const s: { describe: string; default: unknown; boolean?: true; array?: true } = SETTINGS[key]
    const shown = s.default === undefined ? 'off' : Array.isArray(s.default) ? s.default.join(' ') : String(s.default)
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
  return config.accessLogTo === undefined ? undefined : createAccessLog(config.logFormat, config.accessLogTo)
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
function startAdmin(balancer: Balancer, config: ResolvedConfig): AdminServer | undefined {
  const { adminPort: port, adminHost: host } = config
  if (port === undefined) return undefined
  const admin = createAdmin(balancer)
  admin.once('error', err => print(`switchyard: admin listener off, still serving traffic: ${listenError(err, host, port, '--admin-port')}`))
  admin.listen(port, host, () => {
    const { port: bound } = admin.address() as AddressInfo
    const shown = host.includes(':') ? `[${host}]` : host
    print(`switchyard admin on http://${shown}:${bound}/ (dashboard; also /status.json, /metrics, /events)`)
  })
  return admin
}

/** Reads the config file and the flags again, as SIGHUP asks; flags still win. */
function load(args: Record<string, unknown>): ResolvedConfig {
  const flags = Object.fromEntries(CONFIG_KEYS.map(key => [key, args[key]])) as Partial<Record<SettingKey, unknown>>
  const file = typeof args.config === 'string' ? readConfigFile(args.config) : {}
  return resolveConfig(flags, file)
}

function reload(balancer: Balancer, args: Record<string, unknown>, running: ResolvedConfig): void {
  if (typeof args.config !== 'string') {
    print('switchyard: SIGHUP ignored: there is no --config file to read again')
    return
  }
  let next: ResolvedConfig
  const before = access
  try {
    next = load(args)
    if (next.accessLogTo !== running.accessLogTo || next.logFormat !== running.logFormat) access = accessLogOf(next)
  } catch (err) {
    print(`switchyard: reload rejected, still running the old configuration: ${(err as Error).message}`)
    return
  }
  if (next.port !== running.port || next.host !== running.host || next.adminPort !== running.adminPort || next.adminHost !== running.adminHost) {
    print(`switchyard: a new host or port applies only after a restart; still on ${running.host}:${running.port}`)
  }
  // The same log: open its file again, for logrotate (nginx does this on USR1). A new one:
  // write out what the old one holds.
  if (access === before) access?.reopen()
  else before?.flush()
  // What a restart would change stays as it is in force; the rest (drain timeout, log) is the new.
  Object.assign(running, next, { port: running.port, host: running.host, adminPort: running.adminPort, adminHost: running.adminHost })
  balancer.reload({ ...next, log: print, accessLog: access })
  print(`switchyard: reloaded ${args.config}: upstreams ${balancer.pool.upstreams.map(u => u.id).join(', ')}`)
}

function main(): void {
  const args = parseArgs(hideBin(process.argv))
  const config = load(args)
  access = accessLogOf(config)
  const balancer = createBalancer({ ...config, log: print, accessLog: access })
  let admin: AdminServer | undefined

  balancer.once('error', err => {
    console.error(`switchyard: ${listenError(err, config.host, config.port)}`)
    exit(1)
  })
  balancer.listen(config.port, config.host, () => {
    const { port } = balancer.address() as AddressInfo
    const ids = balancer.pool.upstreams.map(u => u.id).join(', ')
    print(`switchyard listening on http://${config.host}:${port}, ${config.policy} over ${ids}`)
    admin = startAdmin(balancer, config)
  })
  if (config.stickySecretGenerated) {
    print('switchyard: warning: no --sticky-secret or --sticky-secret-file; a random secret was made, so stickiness survives neither a restart nor a second instance')
  }

  let stopping = 0
  const stop = (why: string): void => {
    const now = Date.now()
    if (stopping !== 0) {
      // A Ctrl-C reaches this process from the terminal and, through the launcher, again.
      if (now - stopping < SAME_SIGNAL_MS) return
      print(`switchyard: ${why} again, exiting now`)
      exit(1)
    }
    stopping = now
    print(`switchyard: ${why}, draining for up to ${config.drainTimeout / 1000}s`)
    admin?.close()
    void balancer.drain(config.drainTimeout).then(() => exit(0))
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  // By default SIGHUP kills a Node process; here it re-reads the configuration.
  process.on('SIGHUP', () => reload(balancer, args, config))
  // Started by a launcher with an IPC channel: if the launcher dies, stop too.
  if (process.channel !== undefined) process.on('disconnect', () => stop('launcher gone'))
}

try {
  main()
} catch (err) {
  console.error(`switchyard: ${(err as Error).message}`)
  process.exit(1)
}
