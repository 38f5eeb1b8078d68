// tap `coverage-map`: which source files a test file answers for (tap: "avoid tracking accidental
// coverage by integration tests"). `test/launcher.ts` runs the real CLIs as grandchildren, so without
// this their partial coverage would be counted against the packages, whose own tests cover them.
// [] means the default: every file the test loads.
export default testFile => (testFile === 'test/launcher.ts' ? ['scripts/start.mjs'] : [])
