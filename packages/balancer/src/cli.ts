#!/usr/bin/env node
import type { AddressInfo } from 'node:net'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { createBalancer } from './balancer.js'
import { CONFIG_KEYS, readConfigFile, resolveConfig } from './config.js'
import { ConfigError, errorCode } from './errors.js'

/** Signals that arrive within this long of the first are the same request to stop. */
const SAME_SIGNAL_MS = 1000
/** How long in-flight requests get to finish after a stop signal. */
const DRAIN_MS = 10_000

function parseArgs(argv: string[]): Record<string, unknown> {
  return yargs(argv)
    .scriptName('switchyard')
    .usage('$0 [options]\n\nSpreads HTTP requests over upstreams, round-robin, with failover.')
    .option('port', { type: 'string', requiresArg: true, describe: 'Port to listen on [default: 8080]' })
    .option('host', { type: 'string', requiresArg: true, describe: 'Address to listen on [default: 0.0.0.0]' })
    .option('upstream', {
      type: 'string',
      array: true,
      requiresArg: true,
      describe: 'An upstream, "host:port [max_fails=N] [fail_timeout=T]"; repeat for more [default: 127.0.0.1:5000 127.0.0.1:5001]',
    })
    .option('config', { type: 'string', requiresArg: true, describe: 'JSON file with the same settings; flags override it' })
    .option('max-fails', { type: 'string', requiresArg: true, describe: 'Failures that mark an upstream down [default: 1]' })
    .option('fail-timeout', { type: 'string', requiresArg: true, describe: 'Failure window and down time [default: 10s]' })
    .option('timeout', { type: 'string', requiresArg: true, describe: 'Wait for upstream response headers [default: 60s]' })
    .option('quiet', { type: 'boolean', describe: 'No per-request log lines' })
    .strict()
    .fail((msg: string) => {
      throw new ConfigError(msg)
    })
    .help()
    .version(false)
    .parseSync()
}

/** One line a person can act on, for an error from `listen`. */
function listenError(err: Error, host: string, port: number): string {
  const where = `cannot listen on ${host}:${port}`
  const code = errorCode(err)
  if (code === 'EACCES') {
    return `${where}: permission denied (EACCES); ports below 1024 need root or \`sudo setcap cap_net_bind_service=+ep $(command -v node)\`, or use --port 8080`
  }
  if (code === 'EADDRINUSE') return `${where}: the port is in use (EADDRINUSE); stop what holds it or choose another --port`
  return `${where}: ${err.message}`
}

function main(): void {
  const args = parseArgs(hideBin(process.argv))
  const flags = Object.fromEntries(CONFIG_KEYS.map(key => [key, args[key]]))
  const file = typeof args.config === 'string' ? readConfigFile(args.config) : {}
  const config = resolveConfig(flags, file)
  const print = (line: string): void => void process.stdout.write(`${line}\n`)
  const balancer = createBalancer({ ...config, log: print, accessLog: config.quiet ? undefined : print })

  balancer.once('error', err => {
    console.error(`switchyard: ${listenError(err, config.host, config.port)}`)
    process.exit(1)
  })
  balancer.listen(config.port, config.host, () => {
    const { port } = balancer.address() as AddressInfo
    const ids = balancer.pool.upstreams.map(u => u.id).join(', ')
    print(`switchyard listening on http://${config.host}:${port}, round-robin over ${ids}`)
  })

  let stopping = 0
  const stop = (why: string): void => {
    const now = Date.now()
    if (stopping !== 0) {
      // A Ctrl-C reaches this process from the terminal and, through the launcher, again.
      if (now - stopping < SAME_SIGNAL_MS) return
      print(`switchyard: ${why} again, exiting now`)
      process.exit(1)
    }
    stopping = now
    print(`switchyard: ${why}, finishing in-flight requests`)
    balancer.close(() => process.exit(0))
    balancer.closeIdleConnections()
    setTimeout(() => process.exit(1), DRAIN_MS).unref()
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  // Started by a launcher with an IPC channel: if the launcher dies, stop too.
  if (process.channel !== undefined) process.on('disconnect', () => stop('launcher gone'))
}

try {
  main()
} catch (err) {
  console.error(`switchyard: ${(err as Error).message}`)
  process.exit(1)
}
