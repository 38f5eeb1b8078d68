// The state file on a real file system: what is saved is read back, a missing file is a first
// run, a bad one is refused with one line, and a failed write leaves the old file whole.
import { mkdtemp, readFile, readdir, mkdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { StateFile, emptyState, readStateFile, type RuntimeState } from '../../src/upstreams/state-file.js'

async function folder(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-state-'))
  t.teardown(() => import('node:fs/promises').then(fs => fs.rm(dir, { recursive: true, force: true })))
  return dir
}

const state: RuntimeState = {
  added: ['127.0.0.1:5003 weight=2', { address: '127.0.0.1:5004', backup: true }],
  removed: ['127.0.0.1:5001'],
  adminStates: { '127.0.0.1:5000': 'drain', '127.0.0.1:5002': 'maint' },
}

t.test('what is saved is read back; a missing file is an empty state', async t => {
  const dir = await folder(t)
  const path = join(dir, 'state.json')
  t.same(readStateFile(path), emptyState(), 'no file yet: nothing changed at run time')
  const file = new StateFile(path)
  await file.save(state)
  t.same(readStateFile(path), state, 'read back as saved')
  const saved = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>
  t.equal(saved.version, 1, 'versioned')
  t.match(saved.savedAt, /^\d{4}-\d\d-\d\dT/, 'with when it was saved')
  t.same(await readdir(dir), ['state.json'], 'no temporary file left')
})

t.test('saves run in order, each reporting its own failure', async t => {
  const dir = await folder(t)
  const path = join(dir, 'state.json')
  const file = new StateFile(path)
  const first = file.save({ ...emptyState(), removed: ['a:1'] })
  const second = file.save({ ...emptyState(), removed: ['b:2'] })
  await Promise.all([first, second])
  t.same(readStateFile(path).removed, ['b:2'], 'the last one asked for is the one on disk')

  // A folder where the file should be: the rename fails, the temporary file is removed.
  const blocked = join(dir, 'blocked')
  await mkdir(blocked)
  await t.rejects(new StateFile(blocked).save(state), { code: 'EISDIR' }, 'a failed rename is reported')
  t.same((await readdir(dir)).sort(), ['blocked', 'state.json'], 'and leaves no temporary file')
  // A folder that does not exist: even the temporary file cannot be made.
  const lost = new StateFile(join(dir, 'gone', 'state.json'))
  await t.rejects(lost.save(state), { code: 'ENOENT' }, 'a failed open is reported')
  await mkdir(join(dir, 'gone'))
  await lost.save(state)
  t.same(
    readStateFile(join(dir, 'gone', 'state.json')),
    state,
    'a failed save does not block the next: once the folder is there, saves work',
  )
})

t.test('a bad state file is refused with one line that says what to do', async t => {
  const dir = await folder(t)
  const cases: [string, string | undefined, RegExp][] = [
    ['not json', '{', /^state-file .*: not valid JSON \(.*\); fix or remove it$/],
    ['a list', '[]', /: not a JSON object; fix or remove it$/],
    ['null', 'null', /: not a JSON object;/],
    ['another version', '{"version":2}', /: version 2 is not 1;/],
    ['added not a list', '{"version":1,"added":{},"removed":[],"adminStates":{}}', /: "added" is not a list;/],
    ['removed not ids', '{"version":1,"added":[],"removed":[1],"adminStates":{}}', /: "removed" is not a list of ids;/],
    ['removed missing', '{"version":1,"added":[],"adminStates":{}}', /: "removed" is not a list of ids;/],
    ['states not an object', '{"version":1,"added":[],"removed":[],"adminStates":[]}', /: "adminStates" is not an object;/],
    ['states null', '{"version":1,"added":[],"removed":[],"adminStates":null}', /: "adminStates" is not an object;/],
    [
      'a bad state',
      '{"version":1,"added":[],"removed":[],"adminStates":{"a:1":"up"}}',
      /: the admin state of a:1, "up", is not drain or maint;/,
    ],
    [
      'ready saved',
      '{"version":1,"added":[],"removed":[],"adminStates":{"a:1":"ready"}}',
      /: the admin state of a:1, "ready", is not drain or maint;/,
    ],
    ['a folder', undefined, /^state-file .*: cannot be read \(EISDIR\)$/],
  ]
  for (const [what, text, message] of cases) {
    const path = join(dir, what.replace(/ /g, '-'))
    if (text === undefined) await mkdir(path)
    else await writeFile(path, text)
    t.throws(() => readStateFile(path), { name: 'ConfigError', message }, what)
  }
})
