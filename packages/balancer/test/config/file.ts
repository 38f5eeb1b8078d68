import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { readConfigFile } from '../../src/config/file.js'
import { ConfigError } from '../../src/errors.js'
import { tempDir } from '../fixtures/temp.js'

t.test('config files', async t => {
  const dir = tempDir(t, 'config')
  const write = (name: string, text: string): string => {
    const path = join(dir, name)
    writeFileSync(path, text)
    return path
  }
  const good = write('good.json', '{"port": 8081, "upstream": ["127.0.0.1:6000"]}')
  t.same(readConfigFile(good), { port: 8081, upstream: ['127.0.0.1:6000'] }, 'a good file is read')
  const cases: [string, RegExp][] = [
    [join(dir, 'missing.json'), /cannot be read \(ENOENT\)$/],
    [write('bad.json', '{"port": 80,}'), /not valid JSON \(/],
    [write('array.json', '[1]'), /must hold a JSON object/],
    [write('null.json', 'null'), /must hold a JSON object/],
    [write('unknown.json', '{"listen": 80}'), /unknown key "listen" \(allowed: port, host, https-port, tls-cert/],
  ]
  for (const [path, message] of cases) {
    t.throws(() => readConfigFile(path), { name: 'ConfigError', message }, path)
    t.ok(new ConfigError('x') instanceof Error, 'a ConfigError is an Error')
  }
})
