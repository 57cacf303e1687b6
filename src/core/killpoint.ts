/**
 * TEST-ONLY crash hook: when SMOLOTCHI_TEST_KILL_AT names a point, the process SIGKILLs itself
 * there, so tests can prove every interruption leaves the invariants intact. Never set it on a device.
 */
export const KILL_ENV = 'SMOLOTCHI_TEST_KILL_AT';

export function killPoint(name: string, env: NodeJS.ProcessEnv = process.env): void {
  const target = env[KILL_ENV];
  if (target && target === name) process.kill(process.pid, 'SIGKILL');
}
