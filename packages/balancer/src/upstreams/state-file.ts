// --state-file: the admin API's runtime changes, saved atomically so that they survive a restart.
/**
 * `--state-file FILE`: the runtime changes of the admin API, saved so that they survive a restart,
 * as HAProxy's `server-state-file` keeps the servers' admin states across a reload. HAProxy writes
 * its file on demand (`show servers state`); this one is written after every change, before the
 * change is answered, so that a 200 means it is saved. JSON, not HAProxy's column format: it has
 * other fields, and no tool reads both.
 */
import { open, rename, unlink } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { ConfigError } from '../errors.js'
import { isAdminState, type AdminState } from './admin-state.js'

/** The runtime state, as saved. */
export interface RuntimeState {
  /** Upstreams added with `POST /upstreams`, as they were given: a line, or an object with the config file's keys. */
  added: unknown[]
  /** Ids (`host:port`) of configured upstreams removed with `DELETE /upstreams/<id>`. */
  removed: string[]
  /** Admin states other than `ready`, by upstream id. */
  adminStates: Record<string, Exclude<AdminState, 'ready'>>
}

/** The state of a balancer nobody has changed at run time. */
export function emptyState(): RuntimeState {
  return { added: [], removed: [], adminStates: {} }
}

/** The version written, and the only one read. */
const VERSION = 1

/**
 * Reads the state file at start. A file that does not exist yet is an empty state (the first run).
 * @throws ConfigError when it exists but cannot be read or is not a state file: starting without
 *   it would put back into rotation upstreams the operator took out.
 */
export function readStateFile(path: string): RuntimeState {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return emptyState()
    throw new ConfigError(`state-file ${path}: cannot be read (${code})`)
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`state-file ${path}: not valid JSON (${(err as Error).message}); fix or remove it`)
  }
  return validate(data, path)
}

function validate(data: unknown, path: string): RuntimeState {
  const bad = (why: string): ConfigError => new ConfigError(`state-file ${path}: ${why}; fix or remove it`)
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw bad('not a JSON object')
  const d = data as Record<string, unknown>
  if (d.version !== VERSION) throw bad(`version ${JSON.stringify(d.version)} is not ${VERSION}`)
  const { added, removed, adminStates } = d
  if (!Array.isArray(added)) throw bad('"added" is not a list')
  if (!Array.isArray(removed) || !removed.every(id => typeof id === 'string')) throw bad('"removed" is not a list of ids')
  if (typeof adminStates !== 'object' || adminStates === null || Array.isArray(adminStates)) throw bad('"adminStates" is not an object')
  for (const [id, state] of Object.entries(adminStates)) {
    if (!isAdminState(state) || state === 'ready') throw bad(`the admin state of ${id}, ${JSON.stringify(state)}, is not drain or maint`)
  }
  return { added, removed: removed as string[], adminStates: adminStates as RuntimeState['adminStates'] }
}

/**
 * Writes the state file. Each save goes to a temporary file beside it, is flushed to disk, and
 * takes the file's place by rename, so that a crash leaves the old state or the new, never half
 * of one. Saves run one after another, in the order they were asked for.
 */
export class StateFile {
  readonly path: string
  #last: Promise<void> = Promise.resolve()

  constructor(path: string) {
    this.path = path
  }

  /**
   * Saves `state`; resolves once it is on disk.
   * @throws the file system's error (a full disk, a folder that went away); the state in memory stays as it is.
   */
  save(state: RuntimeState): Promise<void> {
    const text = `${JSON.stringify({ version: VERSION, savedAt: new Date().toISOString(), ...state }, null, 2)}\n`
    const next = this.#last.then(() => this.#write(text))
    // The next save waits for this one, but not on its failure: each reports its own.
    this.#last = next.catch(() => {})
    return next
  }

  async #write(text: string): Promise<void> {
    const temp = `${this.path}.${process.pid}.tmp`
    try {
      const file = await open(temp, 'w', 0o600)
      try {
        await file.writeFile(text)
        await file.sync()
      } finally {
        await file.close()
      }
      await rename(temp, this.path)
    } catch (err) {
      await unlink(temp).catch(() => {})
      throw err
    }
  }
}
