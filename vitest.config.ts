import { defineConfig } from 'vitest/config';
import LongSuitesFirst from './test/sequencer.js';

// A host's NODE_EXTRA_CA_CERTS (a CA bundle, 220 KB on this machine) is parsed by every node that
// starts, ~50 ms of CPU each, and the suite starts thousands (the CLI, the fake systemctl). No test
// speaks TLS, so the workers, and every process they start, go without it.
delete process.env.NODE_EXTRA_CA_CERTS;

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
