// The README's setup (its two commands) from a fresh clone: after `npm ci` alone, `npx switchyard`, `npx switchyard-backend` and
// `npx switchyard-worker` run from the root (issue 18). The clone is of the last commit: work not yet committed is not in it.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Runs `file args` in `cwd`; resolves with its exit code and output, whatever the code. */
function sh(file: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise(resolve => {
    execFile(file, args, { cwd, env: { ...process.env, npm_config_update_notifier: 'false' } }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr }),
    )
  })
}

// npm ci and a build of both packages: far longer than the other files of the suite.
t.setTimeout(600_000)

t.test('a fresh clone: npm ci builds the CLIs, and npx finds all three from the root', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-clone-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const clone = await sh('git', ['clone', '--quiet', root, join(dir, 'switchyard')], dir)
  t.equal(clone.code, 0, `git clone: ${clone.stderr.trim()}`)
  const cwd = join(dir, 'switchyard')
  const ci = await sh('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], cwd)
  t.equal(ci.code, 0, `npm ci (with its prepare script): ${ci.stderr.trim().split('\n').slice(-3).join(' | ')}`)

  const help = await sh('npx', ['switchyard', '--help'], cwd)
  t.equal(help.code, 0, 'npx switchyard --help: exit 0')
  t.match(help.stdout, /^switchyard \[options\]\n\nSpreads HTTP requests over upstreams/, 'the balancer usage')
  const backend = await sh('npx', ['switchyard-backend', '--help'], cwd)
  t.equal(backend.code, 0, 'npx switchyard-backend --help: exit 0')
  t.match(backend.stdout, /^switchyard-backend \[options\]/, 'the backend usage')
  const worker = await sh('npx', ['switchyard-worker', '--version'], cwd)
  t.match(worker, { code: 0, stdout: /^switchyard-worker \d+\.\d+\.\d+\n$/ }, 'npx switchyard-worker --version')

  // A checkout that was never built (npm ci --ignore-scripts, say) gets one line saying what to run.
  rmSync(join(cwd, 'packages/balancer/dist'), { recursive: true })
  const unbuilt = await sh('npx', ['switchyard', '--help'], cwd)
  t.equal(unbuilt.code, 1, 'not built: exit 1')
  t.match(
    unbuilt.stderr,
    /^switchyard: cannot load \S+\/packages\/balancer\/dist\/cli\.js \(.*\); build it with `npm run build` at the repository's root\n$/,
    'one line that says what to run',
  )
})
