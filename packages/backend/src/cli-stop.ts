/** How both CLIs stop: gracefully on the first signal, at once on a second, bounded by a timeout. */

/**
 * Stop signals that arrive within this long of the first are the same request to stop:
 * Ctrl-C reaches a launcher's children from the terminal and, forwarded, again as SIGTERM.
 */
const SAME_SIGNAL_MS = 1000

/** What `onStop` needs to know. */
export interface StopPlan {
  /** The process's name in its lines, read when one is printed. */
  name: () => string
  print: (line: string) => void
  /** Seconds the work in progress gets before the process exits anyway. */
  timeout: number
  /** The work in progress, as the lines name it: "in-flight requests". */
  work: string
  /** Starts finishing the work; calls `done` when it is finished. */
  finish: (done: () => void) => void
}

/**
 * On SIGINT or SIGTERM (or the launcher's IPC channel closing), finishes the work in
 * progress and exits 0; exits 1 if that takes longer than `timeout`, and at once, with
 * 128 + the signal's number as a shell reports it, on a second signal.
 */
export function onStop(plan: StopPlan): void {
  let stopping: number | undefined
  const stop = (why: string, exitCode: number): void => {
    const now = performance.now()
    if (stopping !== undefined) {
      if (now - stopping < SAME_SIGNAL_MS) return
      plan.print(`${plan.name()}: ${why} again, exiting now`)
      process.exit(exitCode)
    }
    stopping = now
    plan.print(`${plan.name()}: ${why}, finishing ${plan.work}`)
    plan.finish(() => process.exit(0))
    setTimeout(() => {
      plan.print(`${plan.name()}: ${plan.work} still going after ${plan.timeout}s, exiting`)
      process.exit(1)
    }, plan.timeout * 1000).unref()
  }
  process.on('SIGINT', () => stop('SIGINT', 130))
  process.on('SIGTERM', () => stop('SIGTERM', 143))
  // Spawned with an IPC channel: when it closes, the launcher is gone; stop rather than
  // live on as an orphan.
  if (process.send !== undefined) process.on('disconnect', () => stop('launcher gone', 1))
}
