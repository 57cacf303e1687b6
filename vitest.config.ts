import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Integration tests build real venvs and git repos; two cores, so keep parallelism modest.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
