import { defineConfig } from 'vitest/config';

// Integration tests start real PostgreSQL and s3rver processes: run files one at a time
// (2-core CI machine) and allow generous timeouts; no test asserts on time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    // The JSON report lets .ci/run print a plain 'N passed, N failed' closing line.
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
  },
});
