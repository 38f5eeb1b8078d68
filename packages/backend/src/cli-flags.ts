// What the command line says about itself: its version, and one helpful line for a flag it does not know.
import { readFileSync } from 'node:fs'
import { closest, distance } from 'fastest-levenshtein'

/** The package's version, as `--version` prints it. */
export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

/**
 * yargs' `Unknown argument(s): polcy, x` as one line a person can act on: the first unknown flag,
 * the known flag closest to it when it is near enough to be a typo (a third of its letters, at
 * least one), and where the list is. Undefined for other messages.
 * `usage` is the third argument of yargs' `fail` callback: its descriptions name every known flag.
 */
export function unknownFlag(message: string, usage: unknown, command: string): string | undefined {
  const m = /^Unknown arguments?: ([^,\s]+)/.exec(message)
  if (m === null) return undefined
  const name = m[1] as string
  // yargs types that argument as its whole instance; it is its usage object, whose getDescriptions() holds a key per option.
  const known = Object.keys((usage as { getDescriptions(): Record<string, unknown> }).getDescriptions())
  const near = closest(name, known)
  const hint = distance(name, near) <= Math.max(1, Math.floor(name.length / 3)) ? `; did you mean --${near}?` : ''
  return `unknown flag ${name.length === 1 ? '-' : '--'}${name}${hint} (${command} --help lists them)`
}
