import { defineConfig } from 'vitest/config';

// Kernel tests build real worlds (mounts, namespaces, cgroups): run files one at a time
// so that no two worlds race on the same host-wide state (cgroup attachments, pid reuse).
const report = process.env.PINLEAK_TEST_REPORT;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: report ? ['default', 'json'] : ['default'],
    ...(report ? { outputFile: { json: report } } : {}),
  },
});
