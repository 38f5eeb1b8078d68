// An upstream's admin state (HAProxy's ready / drain / maint): what each lets through, and what a change means.
/**
 * An upstream's admin state, set at run time by the operator: HAProxy's `set server <b>/<s> state
 * ready|drain|maint`. It is apart from health (which the checks and failed requests decide) and
 * from the config's `down`: an upstream is used only when every one of them allows it.
 */
import { ConfigError } from '../errors.js'

/**
 * - `ready`: in rotation (HAProxy READY).
 * - `drain`: no new clients; clients a sticky cookie pins there keep going, requests in flight
 *   finish, health checks go on (HAProxy DRAIN: weight 0, persistence still honoured).
 * - `maint`: no requests at all; requests in flight finish; health checks stop (HAProxy MAINT).
 */
export type AdminState = 'ready' | 'drain' | 'maint'

export const ADMIN_STATES: readonly AdminState[] = ['ready', 'drain', 'maint']

/** Whether `value` is one of the three states. */
export function isAdminState(value: unknown): value is AdminState {
  return (ADMIN_STATES as readonly unknown[]).includes(value)
}

/**
 * Reads a state as the admin API and the state file give it.
 * @throws ConfigError naming `what` and the value.
 */
export function parseAdminState(value: unknown, what: string): AdminState {
  if (isAdminState(value)) return value
  throw new ConfigError(`${what}: ${JSON.stringify(value)} is not one of ${ADMIN_STATES.join(', ')}`)
}

/** Whether the policy may hand an upstream in `state` a client with no sticky cookie for it. */
export function takesNewClients(state: AdminState): boolean {
  return state === 'ready'
}

/**
 * Whether a client a sticky cookie pins to an upstream in `state` may still go there: yes in
 * drain, as HAProxy keeps persistent sessions on a draining server, so that a user's session ends
 * where it began; never in maint.
 */
export function takesPinnedClients(state: AdminState): boolean {
  return state !== 'maint'
}

/** Whether active health checks run for an upstream in `state`: HAProxy stops them in maint. */
export function isChecked(state: AdminState): boolean {
  return state !== 'maint'
}

/**
 * What a change of state from `from` to `to` means.
 * - `changed`: whether it is a change at all (setting the state it has is allowed, and does nothing);
 * - `slowStart`: whether the upstream comes back into rotation, so that its weight ramps up
 *   over `slow_start` again, as HAProxy's `slowstart` applies on leaving maintenance or drain;
 * - `resumeChecks`: whether the checks, stopped in maint, start again (from fresh counts).
 */
export function transition(from: AdminState, to: AdminState): { changed: boolean; slowStart: boolean; resumeChecks: boolean } {
  return {
    changed: from !== to,
    slowStart: to === 'ready' && from !== 'ready',
    resumeChecks: from === 'maint' && to !== 'maint',
  }
}

/** How the dashboard and `/status.json` explain a state other than ready. */
export function describeAdminState(state: Exclude<AdminState, 'ready'>): string {
  return state === 'drain'
    ? 'draining (admin API): no new clients; sticky clients and requests in flight finish'
    : 'in maintenance (admin API): no requests, no health checks'
}
