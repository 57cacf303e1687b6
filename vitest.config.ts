import { defineConfig } from 'vitest/config';
import LongSuitesFirst from './test/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Hang guards, not budgets: CI is the same 2-core machine, often loaded, and a test that fails
    // because the machine is busy is a defect. Tests wait for events; these only catch a real hang.
    testTimeout: 15 * 60_000,
    hookTimeout: 15 * 60_000,
    // Integration tests build real venvs and git repos; two cores, so keep parallelism modest.
    maxWorkers: 2,
    fileParallelism: true,
    sequence: { sequencer: LongSuitesFirst },
  },
});
