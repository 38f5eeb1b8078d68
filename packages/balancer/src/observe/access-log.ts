// The access log: nginx's combined format (with upstream fields) or JSON lines, written in batches through pino.
import { closeSync, openSync } from 'node:fs'
import pino from 'pino'
import { ConfigError, errorCode } from '../errors.js'
import { toMicros } from './stats.js'

/** One request, as the access log records it once its response is over. */
export interface AccessEntry {
  /** When the request came, ms since the epoch. */
  time: number
  /** The client's address. */
  client: string
  method: string
  /** The request target as sent: path and query. */
  path: string
  /** e.g. `1.1`. */
  httpVersion: string
  /** The status sent; 499 when the client went away first (nginx's convention). */
  status: number
  /** Response body bytes sent to the client (nginx `$body_bytes_sent`). */
  bytes: number
  /** The upstream of the last try (`host:port`), or undefined when none was tried. */
  upstream: string | undefined
  /** Time from sending the request upstream to the end of its response, ms (nginx `$upstream_response_time`). */
  upstreamMs: number | undefined
  /** Time from the request's arrival to the end of its response, ms (nginx `$request_time`). */
  totalMs: number
  /** Tries after the first. */
  retries: number
  /** The upstream's `X-Cache` (HIT / MISS), when it sent one. */
  cache: string | undefined
  /** The edge cache's `X-Cache-Status`, when the request went through it (`edge_cache=`). */
  edgeCache?: string | undefined
  /** `TLSv1.3` over HTTPS (HTTP/2 included); undefined over plain HTTP. */
  tls?: string | undefined
  referer: string | undefined
  userAgent: string | undefined
}

export const LOG_FORMATS = ['combined', 'json'] as const
export type LogFormat = (typeof LOG_FORMATS)[number]

/** Where access lines go. */
export interface AccessLog {
  write(entry: AccessEntry): void
  /** Writes out what is buffered, synchronously: call it before the process exits. */
  flush(): void
  /**
   * Opens the file again, after logrotate moved it (what nginx does on USR1; here on SIGHUP).
   * Says what it did: `reopened`, `stdout` (nothing to reopen), or `failed` (told to onError too).
   */
  reopen(): 'reopened' | 'stdout' | 'failed'
  /** Writes out what is left and closes the file (a reload switched to another log). */
  close(): void
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const pad = (n: number): string => (n < 10 ? `0${n}` : String(n))

/** The last second formatted, and its text: lines of the same second share it (nginx caches its log time the same way). */
let cachedSecond = -1
let cachedText = ''

/** nginx's `$time_local`, in UTC: `28/Nov/2026:10:15:03 +0000`. */
export function timeLocal(ms: number): string {
  const second = Math.floor(ms / 1000)
  if (second === cachedSecond) return cachedText
  const d = new Date(ms)
  cachedSecond = second
  cachedText = `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`
  return cachedText
}

/** A quoted field as nginx escapes it: `"` `\` and bytes outside printable ASCII as \xHH. */
function quoted(value: string | undefined): string {
  if (value === undefined || value === '') return '"-"'
  return `"${value.replace(/["\\\x00-\x1f\x7f-\uffff]/g, c => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}"`
}

const seconds = (ms: number | undefined): string => (ms === undefined ? '-' : (ms / 1000).toFixed(3))

/**
 * nginx's `combined` format, then the upstream fields nginx users add to it (the common
 * `upstream_time` extension), as key=value pairs so that `combined` parsers still read the
 * line: `127.0.0.1 - - [time] "GET / HTTP/1.1" 200 30 "-" "curl/8" upstream=127.0.0.1:5000
 * upstream_time=0.002 request_time=0.003 retries=0 cache=MISS`.
 */
export function formatCombined(e: AccessEntry): string {
  const request = quoted(`${e.method} ${e.path} HTTP/${e.httpVersion}`)
  return (
    `${e.client} - - [${timeLocal(e.time)}] ${request} ${e.status} ${e.bytes} ${quoted(e.referer)} ${quoted(e.userAgent)}` +
    ` upstream=${e.upstream ?? '-'} upstream_time=${seconds(e.upstreamMs)} request_time=${seconds(e.totalMs)} retries=${e.retries} cache=${e.cache ?? '-'}` +
    // Only with the edge cache on, or over HTTPS, so that the lines of a plain balancer stay as they were.
    (e.edgeCache === undefined ? '' : ` edge_cache=${e.edgeCache}`) +
    (e.tls === undefined ? '' : ` tls=${e.tls}`)
  )
}

/**
 * Checks that `file` can be appended to, now, so that a bad `--access-log` is a start-up
 * error naming the file rather than an asynchronous one later.
 */
function checkWritable(file: string): void {
  try {
    closeSync(openSync(file, 'a'))
  } catch (err) {
    throw new ConfigError(`access-log ${file}: cannot be opened for appending (${errorCode(err as Error)})`)
  }
}

/**
 * An access log written through pino's destination (sonic-boom), synchronously, with the
 * lines of one turn of the event loop written together: a quiet balancer writes each line as
 * its request ends, a busy one one write(2) per turn rather than per request (nginx's
 * `buffer=` with a flush after every turn). Synchronous, because sonic-boom's asynchronous
 * mode was found to lose or reorder the last lines at exit (its flushSync skips a write in
 * flight); and not through flushSync, which also fsyncs. `json` lines come from a pino logger,
 * `combined` lines are formatted here; both go through the same batch.
 *
 * @param to `-` for standard output, or a file to append to.
 * @param onError told when the file cannot be opened again on `reopen()`; the log then keeps
 *   writing to the file it had, as nginx does.
 */
export function createAccessLog(format: LogFormat, to: string, onError: (message: string) => void = () => {}): AccessLog {
  if (to !== '-') checkWritable(to)
  const dest = pino.destination({ dest: to === '-' ? 1 : to, sync: true })
  // Without a listener a failed reopen would be thrown as an unhandled 'error' and kill the process.
  dest.on('error', (err: Error) =>
    onError(`access-log ${to}: cannot be opened again (${errorCode(err)}); still writing to the file it had`),
  )
  let pending = ''
  const flush = (): void => {
    if (pending === '') return
    const lines = pending
    pending = ''
    dest.write(lines)
  }
  const batch = {
    write(line: string): void {
      if (pending === '') setImmediate(flush)
      pending += line
    },
  }
  let write: (e: AccessEntry) => void
  if (format === 'json') {
    // No level, pid or hostname: an access line is not a log event, and these cost bytes. A
    // `type` takes the level's place, telling a shipper access lines from others; it must not
    // be empty (pino 10 then writes `{,`).
    const logger = pino({ base: undefined, timestamp: false, formatters: { level: () => ({ type: 'access' }) } }, batch)
    write = e =>
      logger.info({
        ...e,
        time: new Date(e.time).toISOString(),
        upstreamMs: e.upstreamMs === undefined ? undefined : toMicros(e.upstreamMs),
        totalMs: toMicros(e.totalMs),
      })
  } else {
    write = e => batch.write(`${formatCombined(e)}\n`)
  }
  return {
    write,
    flush,
    reopen: () => {
      if (to === '-') return 'stdout'
      flush()
      try {
        dest.reopen()
        return 'reopened'
      } catch {
        // Thrown, and also emitted as 'error', reported above; the old file stays open.
        return 'failed'
      }
    },
    close: () => {
      flush()
      // Standard output stays open: it is the process's, not the log's.
      if (to !== '-') dest.end()
    },
  }
}
