#!/usr/bin/env node
// The `switchyard-backend` command as npm links it. It needs no build of its own: it loads the compiled CLI, which
// the root `prepare` script (`tsc -b`) builds on `npm ci`, and says so in one line when it is missing.
import { fileURLToPath } from 'node:url'

const cli = new URL('../dist/cli.js', import.meta.url)
await import(cli.href).catch((/** @type {Error} */ err) => {
  console.error(
    `switchyard-backend: cannot load ${fileURLToPath(cli)} (${err.message.split('\n')[0]}); build it with \`npm run build\` at the repository's root`,
  )
  process.exit(1)
})
