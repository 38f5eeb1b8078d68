// The config file: a JSON object whose keys are the flags' long names.
import { readFileSync } from 'node:fs'
import { ConfigError } from '../errors.js'
import { CONFIG_KEYS } from './settings.js'

/** Reads a JSON config file whose keys are the flags' long names. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`config ${path}: cannot be read (${(err as NodeJS.ErrnoException).code})`)
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`config ${path}: not valid JSON (${(err as Error).message})`)
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError(`config ${path}: must hold a JSON object, like {"port": 8080}`)
  }
  for (const key of Object.keys(data)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      throw new ConfigError(`config ${path}: unknown key ${JSON.stringify(key)} (allowed: ${CONFIG_KEYS.join(', ')})`)
    }
  }
  return data as Record<string, unknown>
}
