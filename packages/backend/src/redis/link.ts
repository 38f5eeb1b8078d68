/** The backend's one Redis connection: a deadline on every command, and whether Redis is answering. */
import type { RedisClientType, RedisDefaultModules } from 'redis'
import { RedisUnavailableError } from '../errors.js'
import { redact, type RedisTarget } from './url.js'

/**
 * A node-redis client. node-redis is the client Redis's maintainers recommend, and BullMQ 6
 * takes it as it is (`createNodeRedisClient`, picked for a node-redis instance): one client
 * library for the cache, the sessions and the job queue, not two.
 */
type None = Record<never, never>
export type RedisClient = RedisClientType<RedisDefaultModules, None, None, 3, None>

/** The same client, answering bulk strings as Buffers: for values that are bytes (cached bodies). */
export type BinaryClient = RedisClientType<RedisDefaultModules, None, None, 3, { 36: BufferConstructor }>

/** The two views of the one connection that a command gets. */
interface Clients {
  client: RedisClient
  binary: BinaryClient
}

/** Options of `RedisLink`. */
export interface RedisLinkOptions {
  target: RedisTarget
  /** Milliseconds a command may go unanswered before it counts as failed. Default 500. */
  timeout?: number
  /** Milliseconds between the PINGs that look for Redis while it is down. Default 1000. */
  probeInterval?: number
  /** Receives a line when Redis goes down and when it answers again. Default: none. */
  log?: (line: string) => void
  /** Who speaks in those lines, read when one is written. Default 'switchyard'. */
  name?: () => string
  /** What an outage means for this process, said in the down line. Default ''. */
  effect?: string
  /**
   * Length of node-redis's command queue. Commands past it fail at once instead of holding
   * memory while Redis is stopped. Default 10,000.
   */
  queueLength?: number
}

/**
 * One node-redis client, shared by the cache, the session store and BullMQ (which opens its
 * own blocking connection beside it), and the state of Redis as this process sees it.
 *
 * node-redis's own command `timeout` stops counting once a command is written to the socket,
 * so a stopped Redis (SIGSTOP, a frozen VM) would hold every command forever: `run` puts a
 * deadline on the answer itself. A failure marks Redis down, once, with one log line; from
 * then on commands fail at once (the cache bypasses, `/session` answers 503) instead of each
 * waiting out the deadline, and a PING every `probeInterval` ms, or node-redis reconnecting,
 * finds Redis again. This is nginx's passive health check (`max_fails=1`) with an active probe
 * behind it, like the balancer's own health checks.
 */
export class RedisLink {
  readonly target: RedisTarget
  readonly #timeout: number
  readonly #probeInterval: number
  readonly #log: (line: string) => void
  readonly #name: () => string
  readonly #effect: string
  /** Loaded on first use, so a backend without --redis never loads node-redis. */
  readonly #clients: Promise<Clients>
  #up = true
  #connected = false
  #downSince = 0
  #probe: NodeJS.Timeout | undefined
  #closed = false
  #checking = false

  constructor(options: RedisLinkOptions) {
    this.target = options.target
    this.#timeout = options.timeout ?? 500
    this.#probeInterval = options.probeInterval ?? 1000
    this.#log = options.log ?? (() => {})
    this.#name = options.name ?? (() => 'switchyard')
    this.#effect = options.effect ?? ''
    this.#clients = import('redis').then(({ createClient, RESP_TYPES }) => {
      // The offline queue stays on: a command sent while node-redis (re)connects waits for
      // the connection rather than failing, and the deadline still bounds it.
      const client = createClient({ url: this.target.url, commandsQueueMaxLength: options.queueLength ?? 10_000 })
      // Without a listener, an 'error' event would kill the process; node-redis emits one per
      // failed (re)connection attempt and goes on reconnecting with backoff.
      client.on('error', (err: Error) => this.fail(err))
      client.on('ready', this.#onReady)
      client.connect().catch((err: Error) => this.fail(err))
      return { client, binary: client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }) }
    })
  }

  /** Whether Redis answered the last command (true until a failure says otherwise). */
  get up(): boolean {
    return this.#up
  }

  /** The client, for BullMQ, which brings its own retries and waits on a connection itself. */
  async client(): Promise<RedisClient> {
    return (await this.#clients).client
  }

  /**
   * Runs `command`, and resolves with its answer if it comes within the timeout. Rejects with
   * `RedisUnavailableError` at once while Redis is down, and after marking it down when the
   * command fails or the answer is late.
   */
  async run<T>(command: (client: RedisClient, binary: BinaryClient) => Promise<T>): Promise<T> {
    if (!this.#up) throw new RedisUnavailableError()
    // Loading node-redis is not Redis being slow: the deadline starts with the command.
    const { client, binary } = await this.#clients
    try {
      return await this.#answer(command(client, binary))
    } catch (err) {
      this.fail(err as Error)
      throw new RedisUnavailableError()
    }
  }

  /**
   * Marks Redis down because of `err`: logs one line, the first time, with the reason
   * (password masked), and starts looking for Redis again. Also for failures seen by
   * connections this link does not own (BullMQ's blocking one).
   */
  fail(err: Error): void {
    if (!this.#up || this.#closed) return
    this.#up = false
    this.#downSince = performance.now()
    const effect = this.#effect === '' ? '' : `; ${this.#effect}`
    this.#log(`${this.#name()}: redis down (${redact(err.message, this.target.password)})${effect}`)
    this.#probe = setInterval(() => void this.#check(), this.#probeInterval)
    this.#probe.unref()
  }

  /** Stops probing and closes the connection at once; commands in flight fail. */
  async close(): Promise<void> {
    this.#closed = true
    clearInterval(this.#probe)
    const { client } = await this.#clients
    // destroy(), not close(): close() waits for answers a stopped Redis never sends.
    if (client.isOpen) client.destroy()
  }

  #onReady = (): void => {
    if (!this.#connected) {
      this.#connected = true
      this.#log(`${this.#name()}: redis connected to ${this.target.shown}`)
    }
    // node-redis reconnected: no need to wait for the next probe.
    if (!this.#up) void this.#check()
  }

  /** One PING at a time, while down: an answer marks Redis up again. */
  async #check(): Promise<void> {
    if (this.#checking) return
    this.#checking = true
    const { client } = await this.#clients
    try {
      await this.#answer(client.ping())
    } catch {
      return
    } finally {
      this.#checking = false
    }
    this.#up = true
    clearInterval(this.#probe)
    const seconds = ((performance.now() - this.#downSince) / 1000).toFixed(1)
    this.#log(`${this.#name()}: redis answering again after ${seconds}s`)
  }

  /**
   * `pending`, or a rejection once the timeout passes without an answer. Node runs due timers
   * before it polls for I/O: after a stalled event loop the timer would win over an answer
   * already in the socket, and mark a healthy Redis down. The verdict waits for that turn's poll
   * (setImmediate runs right after it), where the answer settles `pending` first, as the
   * balancer's upstream timeouts do (and as nginx handles events before it expires timers).
   */
  #answer<T>(pending: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_resolve, reject) => {
      const fail = (): void => reject(new Error(`no answer within ${this.#timeout} ms`))
      timer = setTimeout(() => setImmediate(fail), this.#timeout)
    })
    return Promise.race([pending, late]).finally(() => clearTimeout(timer))
  }
}
