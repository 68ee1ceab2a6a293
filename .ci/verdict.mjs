// Reads vitest's JSON reports, one per Node.js version (.ci/vitest-report-node<N>.json):
// prints a line per version and the plain closing line summed over them, last; fails on
// any failed, skipped or pending test (a real-kernel test that did not run is a failure
// here), on a version that wrote no report (its run died before vitest reported) or on
// a version that ran no test.
import fs from 'node:fs';
import path from 'node:path';

const total = { passed: 0, failed: 0, skipped: 0 };
const problems = [];
for (const file of process.argv.slice(2)) {
  const version = path.basename(file).replace(/^vitest-report-?/, '').replace(/\.json$/, '') || 'tests';
  let report;
  try {
    report = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    console.log(`${version}: no test report (${e.code ?? e.message}): the run failed before vitest reported`);
    problems.push(`${version} wrote no test report`);
    continue;
  }
  const passed = report.numPassedTests;
  const failed = report.numFailedTests;
  const skipped = report.numPendingTests + (report.numTodoTests ?? 0);
  console.log(`${version}: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  total.passed += passed;
  total.failed += failed;
  total.skipped += skipped;
  if (failed > 0) problems.push(`${version}: ${failed} failed`);
  if (skipped > 0) problems.push(`${version}: ${skipped} skipped (the kernel tests must run on this machine)`);
  if (passed === 0) problems.push(`${version}: no test ran`);
}
if (!process.argv[2]) problems.push('no test report given');
for (const p of problems) console.log(`CI: ${p}`);
console.log(`tests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
if (problems.length) process.exit(1);
