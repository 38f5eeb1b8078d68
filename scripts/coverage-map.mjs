// tap `coverage-map`: which source files a test file answers for (tap: "avoid tracking accidental
// coverage by integration tests"). `test/launcher.ts` and `test/supervision.ts` run the real CLIs as grandchildren, so without
// this their partial coverage would be counted against the packages, whose own tests cover them.
// [] means the default: every file the test loads.
const launcherTests = new Set(['test/launcher.ts', 'test/supervision.ts', 'test/launcher-redis.ts'])
// test/docs.ts runs the docs' commands against the launcher and the CLIs as real processes: it answers for none of their
// lines, which the packages' own tests cover.
export default testFile => (launcherTests.has(testFile) || testFile === 'test/docs.ts' ? ['scripts/start.mjs'] : [])
