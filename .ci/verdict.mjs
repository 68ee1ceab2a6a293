// Reads vitest's JSON report: prints the plain closing line, fails on any skipped or
// pending test (a real-kernel test that did not run is a failure here) or on no tests.
import fs from 'node:fs';

const report = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const passed = report.numPassedTests;
const failed = report.numFailedTests;
const skipped = report.numPendingTests + (report.numTodoTests ?? 0);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (failed > 0) process.exit(1);
if (skipped > 0) {
  console.error('CI: skipped tests are failures here (the kernel tests must run on this machine)');
  process.exit(1);
}
if (passed === 0) {
  console.error('CI: no test ran');
  process.exit(1);
}
