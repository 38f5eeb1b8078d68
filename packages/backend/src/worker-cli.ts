#!/usr/bin/env node
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { VERSION, unknownFlag } from './cli-flags.js'
import { onStop } from './cli-stop.js'
import { parseId, parseWholeNumber, resolveJobSettings } from './config.js'
import { ConfigError } from './errors.js'
import { createWorker } from './worker.js'

const NAME = 'switchyard-worker'
function parseArgs(argv: string[]): Record<string, unknown> {
  return yargs(argv)
    .scriptName(NAME)
    .usage(
      '$0 --redis URL [options]\n\nRuns the jobs backends queue in Redis (POST /jobs), without serving HTTP. Start as many as you like.',
    )
    .option('redis', {
      type: 'string',
      requiresArg: true,
      describe:
        "redis://[user:password@]host[:port][/db], the backends' Redis; REDIS_URL works too, and keeps a password out of `ps` [required]",
    })
    .option('redis-prefix', {
      type: 'string',
      requiresArg: true,
      describe: "Prefix of every Redis key: the backends' [default: switchyard:]",
    })
    .option('jobs-concurrency', { type: 'string', requiresArg: true, describe: 'Jobs run at once [default: 2]' })
    .option('lock-duration', {
      type: 'string',
      requiresArg: true,
      describe: "Seconds before a job of a worker that died runs again (BullMQ's lock) [default: 30]",
    })
    .option('id', { type: 'string', requiresArg: true, describe: 'Name in job logs and in its own lines [default: worker-<pid>]' })
    .option('shutdown-timeout', {
      type: 'string',
      requiresArg: true,
      describe:
        'Seconds jobs in progress get after SIGTERM/SIGINT before exiting anyway; an unfinished job runs again elsewhere [default: 10]',
    })
    .option('quiet', { type: 'boolean', describe: 'No line per job' })
    .strict()
    .fail((msg: string, _err, y) => {
      throw new ConfigError(unknownFlag(msg, y, NAME) ?? msg.replace(/\s*\n\s*/g, ' '))
    })
    .help()
    .version('version', 'Show the version and exit', `${NAME} ${VERSION}`)
    .parseSync()
}

function main(): void {
  const args = parseArgs(hideBin(process.argv))
  // REDIS_URL keeps a password off the command line, where `ps` shows it to every user.
  const env = process.env.REDIS_URL
  const fromEnv = args.redis === undefined && env !== undefined && env !== ''
  const settings = resolveJobSettings(
    {
      redis: fromEnv ? env : args.redis,
      redisPrefix: args['redis-prefix'],
      jobsConcurrency: args['jobs-concurrency'],
      lockDuration: args['lock-duration'],
    },
    {
      redis: fromEnv ? 'REDIS_URL' : '--redis',
      redisPrefix: '--redis-prefix',
      jobsConcurrency: '--jobs-concurrency',
      lockDuration: '--lock-duration',
    },
  )
  if (settings.redis === undefined) {
    throw new ConfigError('--redis (or REDIS_URL) is required: without Redis, jobs run inside switchyard-backend')
  }
  const shutdownTimeout = parseWholeNumber(args['shutdown-timeout'] ?? 10, '--shutdown-timeout', 0, 3600)
  const id = args.id === undefined ? undefined : parseId(args.id, '--id')
  const print = (line: string): void => void process.stdout.write(`${line}\n`)
  // A launcher that dies closes the pipe it read our output from; writing to it then must
  // not crash the shutdown that its death starts.
  process.stdout.on('error', () => {})
  const worker = createWorker({
    redis: settings.redis.url,
    redisPrefix: settings.redisPrefix,
    jobsConcurrency: settings.jobsConcurrency,
    lockDuration: settings.lockDuration,
    id,
    log: print,
    jobLog: args.quiet === true ? undefined : print,
  })
  // BullMQ waits for Redis as long as it takes; the line comes once jobs can be taken.
  void worker.ready().then(() => print(`${worker.id} ready: jobs from ${worker.shown}, ${settings.jobsConcurrency} at once`))
  onStop({
    name: () => worker.id,
    print,
    timeout: shutdownTimeout,
    work: 'jobs in progress',
    finish: done => void worker.close().then(done),
  })
}

try {
  main()
} catch (err) {
  console.error(`${NAME}: ${(err as Error).message}`)
  process.exit(1)
}
