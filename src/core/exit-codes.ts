/**
 * The stable exit codes: documented in the README, relied upon by scripts and tests.
 * Never renumber or reuse a code.
 */

export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  notFound: 3,
  integrity: 4,
  rolledBack: 5,
  degraded: 6,
  locked: 75,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];
