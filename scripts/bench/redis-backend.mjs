// A backend for `npm run bench:redis`, made through the library so the bench can set what the CLI
// does not offer (cacheLocalTtl: 0, every HIT a Redis round trip). argv[2]: createBackend's
// options as JSON. Prints "listening <port>" once it listens; exits on SIGTERM.
import { createBackend } from '../../packages/backend/dist/index.js'

const backend = createBackend(JSON.parse(process.argv[2]))
backend.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${backend.address().port}\n`))
process.on('SIGTERM', () => backend.close(() => process.exit(0)))
