import { defineConfig } from 'vitest/config';

// test/unit: no servers, runs in seconds. test/integration: real PostgreSQL and s3rver
// processes, so files run one at a time (2-core CI machine) with generous timeouts; no test
// asserts on time.
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    // The JSON report lets .ci/run print a plain 'N passed, N failed' closing line.
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
  },
});
