// The admin API's UpstreamControl over an upstream group: each change is applied, saved to the state file, passed to every worker, then answered.
import type { StatusSnapshot, UpstreamStatus } from '../observe/status.js'
import type { AdminState } from '../upstreams/admin-state.js'
import type { RuntimeError, UpstreamGroup } from '../upstreams/group.js'
import type { StateFile } from '../upstreams/state-file.js'
import type { Upstream } from '../upstreams/upstream.js'
import type { Outcome, UpstreamControl } from './upstreams-api.js'

/** What the control needs besides the group. */
export interface ControlOptions {
  /** The status, for the upstreams' objects: this process's, or the cluster's. */
  status(): Promise<StatusSnapshot>
  /** Resolves once every worker holds the change; none without workers. */
  propagate?: () => Promise<void>
  /** Where the runtime state is saved (`--state-file`); none by default. */
  stateFile?: StateFile | undefined
}

/**
 * The control the admin routes drive. A change is in force in this process when the group
 * returns; then it is saved (a failed save is a 500 that says the change holds but is not saved)
 * and passed on to every worker, and only then answered.
 */
export class GroupControl implements UpstreamControl<UpstreamStatus> {
  readonly #group: UpstreamGroup
  readonly #options: ControlOptions

  constructor(group: UpstreamGroup, options: ControlOptions) {
    this.#group = group
    this.#options = options
  }

  async list(): Promise<UpstreamStatus[]> {
    return (await this.#options.status()).upstreams
  }

  setState(id: string, state: AdminState): Promise<Outcome<UpstreamStatus>> {
    return this.#change(async () => [this.#group.setAdminState(id, state)])
  }

  add(spec: unknown): Promise<Outcome<UpstreamStatus | UpstreamStatus[]>> {
    return this.#change(() => this.#group.add(spec), true)
  }

  async remove(id: string): Promise<Outcome<UpstreamStatus>> {
    // Its object as it was: once removed it is shown as draining only while requests are in flight.
    const before = (await this.list()).find(u => u.id === id)
    const outcome = await this.#change(async () => [await this.#group.remove(id)])
    if (!outcome.ok) return outcome
    return {
      ok: true,
      upstream: {
        ...(before as UpstreamStatus),
        ...outcome.upstream,
        state: 'draining',
        reason: `removed through the admin API; finishing its requests in flight`,
      },
    }
  }

  async #change<T extends UpstreamStatus | UpstreamStatus[]>(apply: () => Promise<Upstream[]>, adding = false): Promise<Outcome<T>> {
    let changed: Upstream[]
    try {
      changed = await apply()
    } catch (err) {
      // The group refuses with RuntimeError only; anything else would be a bug, and a 500 all the same.
      const refused = err as RuntimeError
      return { ok: false, status: refused.status, message: refused.message }
    }
    await this.#options.propagate?.()
    try {
      await this.#options.stateFile?.save(this.#group.runtime)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      return {
        ok: false,
        status: 500,
        message: `500 Internal Server Error: the change is in force, but the state file ${this.#options.stateFile?.path} could not be written (${code})`,
      }
    }
    const rows = await this.list()
    const byId = (u: Upstream): UpstreamStatus => rows.find(r => r.id === u.id) ?? ({ id: u.id } as UpstreamStatus)
    // A `resolve` line added through the API answers with the upstreams its name has now (a list); an address, with its object.
    const many = adding && (changed.length !== 1 || (changed[0] as Upstream).from !== undefined)
    return { ok: true, upstream: (many ? changed.map(byId) : byId(changed[0] as Upstream)) as T }
  }
}
