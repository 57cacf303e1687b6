/**
 * TEST-ONLY kill, pause and trace points that prove every interruption keeps the invariants.
 * Never set on a device: without the SMOLOTCHI_TEST_* variables every point does nothing.
 */

import { appendFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * TEST-ONLY crash hook: when SMOLOTCHI_TEST_KILL_AT names a point, the process SIGKILLs itself
 * there, so tests can prove every interruption leaves the invariants intact. `name#N` kills at the
 * N-th time the point is reached (steps repeat while an automatic rollback re-activates).
 * SMOLOTCHI_TEST_PAUSE_AT (with SMOLOTCHI_TEST_PAUSE_DIR) stops there instead, until the test
 * says go on: the way tests fill a disk or delete a lock at an exact moment. Never set on a device.
 */
export const KILL_ENV = 'SMOLOTCHI_TEST_KILL_AT';
export const PAUSE_ENV = 'SMOLOTCHI_TEST_PAUSE_AT';
export const PAUSE_DIR_ENV = 'SMOLOTCHI_TEST_PAUSE_DIR';
/** Appends every point reached, one per line: tests measure progress in steps, not milliseconds. */
export const TRACE_ENV = 'SMOLOTCHI_TEST_TRACE';
/** At the N-th point reached (any name), SIGKILL the whole process group (children included). */
export const KILL_GROUP_AT_STEP_ENV = 'SMOLOTCHI_TEST_KILL_GROUP_AT_STEP';

const reached = new Map<string, number>();
let steps = 0;

export function killPoint(name: string, env: NodeJS.ProcessEnv = process.env): void {
  const target = env[KILL_ENV];
  const pause = env[PAUSE_ENV];
  const trace = env[TRACE_ENV];
  const groupAt = env[KILL_GROUP_AT_STEP_ENV];
  if (!target && !pause && !trace && !groupAt) return;
  const n = (reached.get(name) ?? 0) + 1;
  reached.set(name, n);
  steps++;
  if (trace) appendFileSync(trace, `${name}\n`);
  if (groupAt && steps === Number(groupAt)) killGroup();
  const hit = (wanted: string) => wanted === name || wanted === `${name}#${n}`;
  if (target && hit(target)) process.kill(process.pid, 'SIGKILL');
  if (pause && pause.split(',').some(hit)) pauseHere(name, env[PAUSE_DIR_ENV]);
}

/** Files a test watches: `<point>.paused` appears while we wait; `<point>.resume` lets us go on. */
export function pauseFiles(dir: string, name: string): { paused: string; resume: string } {
  const base = path.join(dir, encodeURIComponent(name));
  return { paused: `${base}.paused`, resume: `${base}.resume` };
}

function pauseHere(name: string, dir: string | undefined): void {
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  const { paused, resume } = pauseFiles(dir, name);
  writeFileSync(paused, String(process.pid));
  // Synchronous on purpose: nothing of ours may run while the test changes the world.
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + 120_000;
  while (!existsSync(resume) && Date.now() < deadline) Atomics.wait(cell, 0, 0, 20);
  rmSync(paused, { force: true });
  rmSync(resume, { force: true });
}

/** Our process group when we lead one (a test started us detached), else just this process. */
function killGroup(): void {
  try {
    process.kill(-process.pid, 'SIGKILL');
  } catch {
    process.kill(process.pid, 'SIGKILL');
  }
}
