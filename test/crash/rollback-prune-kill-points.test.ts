import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCrashBox, type CrashBox } from '../support/crash-fixture.js';
import { checkInvariants, currentOf } from '../support/invariants.js';

/**
 * SIGKILL `rollback`, `prune` and `recover` itself at their kill points, then prove I1-I7 after
 * the next command's recovery. The template: 0.9.0, 1.0.0 and 1.1.0 installed, 1.1.0 current
 * (its units differ from 1.0.0's: going back adds the ai worker and changes core and web).
 * The killed run is always a real process; the commands after it run in the test process
 * (box.run), except in the first case of each block, which runs them all through the CLI.
 */

interface Case {
  command: string[];
  point: string;
  allowed: (string | null)[];
}

const ROLLBACK = [
  'lock-acquired', 'recovered', 'render-units', 'write-units', 'atomic-temp:smolotchi-ai.service', 'atomic-temp:smolotchi-core.service',
  'atomic-renamed:smolotchi-ai.service', 'atomic-renamed:smolotchi-web.service', 'units-written', 'daemon-reload', 'daemon-reloaded',
  'units-enabled', 'flip', 'flip-symlinked', 'flip-renamed', 'restart', 'restarted:smolotchi-core.service', 'restarted:smolotchi-ai.service',
  'lock-reasserted', 'health-gate', 'gate-units-active', 'gate-passed', 'mark', 'marked', 'rollback-finished',
];
const PRUNE = ['lock-acquired', 'recovered', 'remove 0.9.0', 'prune-remove', 'trash-renamed:0.9.0', 'prune-removed', 'prune-finished'];

const CASES: Case[] = [
  ...ROLLBACK.map((point) => ({ command: ['rollback'], point, allowed: ['1.1.0', '1.0.0'] })),
  ...PRUNE.map((point) => ({ command: ['prune', '--keep', '2'], point, allowed: ['1.1.0'] })),
];

// `recover` itself killed while undoing an install of 2.0.0 that died right after its flip: a crash
// during recovery must lead to the same end state (back on 1.1.0, never left on unproven 2.0.0).
const RECOVER = ['recovery-cleaned', 'flip-renamed', 'recovery-reverted', 'recovery-rows-closed', 'atomic-renamed:smolotchi-core.service', 'units-written'];

let box: CrashBox;
const survived = { rollback: 0, prune: 0, recover: 0 };
const started = Date.now();

beforeAll(async () => {
  box = await makeCrashBox('kill-rollback');
  for (const v of ['0.9.0', '1.0.0', '1.1.0']) {
    const r = await box.cli(['install', v]);
    expect(r.exitCode, r.stderr).toBe(0);
  }
  box.saveTemplate('three');
});

afterAll(() => {
  const total = survived.rollback + survived.prune + survived.recover;
  console.log(
    `[crash] rollback: ${survived.rollback}/${ROLLBACK.length}, prune: ${survived.prune}/${PRUNE.length}, recover: ${survived.recover}/${RECOVER.length} ` +
      `kill points survived (${total} in all) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  box?.cleanup();
});

/** The commands after a kill: through the CLI in the first case of a kind, else in-process. */
const next = (first: boolean) => (args: string[]) => (first ? box.cli(args) : box.run(args));

describe('rollback and prune killed at a kill point, then recovered', () => {
  it('covers at least 8 rollback and 4 prune kill points', () => {
    expect(ROLLBACK.length).toBeGreaterThanOrEqual(8);
    expect(PRUNE.length).toBeGreaterThanOrEqual(4);
  });

  it.each(CASES)('$command.0 killed at $point', async (c) => {
    box.useTemplate('three');
    const before = currentOf(box.root);
    const killed = await box.cli(c.command, { killAt: c.point });
    expect(killed.signal, `not killed at ${c.point} (exit ${killed.exitCode}): ${killed.stderr}`).toBe('SIGKILL');
    const cli = next(c === CASES[0]);
    const recovered = await cli(['recover']);
    expect(recovered.exitCode, recovered.stderr).toBe(0);
    const problems = await checkInvariants(box.root, cli, { allowed: c.allowed, old: before, next: { install: ['1.1.0'] } });
    expect(problems, `after a kill at ${c.point}`).toEqual([]);
    survived[c.command[0] as 'rollback' | 'prune']++;
  });
});

describe('recovery killed while it repairs, then run again', () => {
  // An install of 2.0.0 that died right after switching: recovery must go back to 1.1.0. Every case
  // starts from this same root, so the install is killed once and its root kept as a template.
  beforeAll(async () => {
    box.useTemplate('three');
    const install = await box.cli(['install', '2.0.0'], { killAt: 'flip-renamed' });
    expect(install.signal).toBe('SIGKILL');
    expect(currentOf(box.root)).toBe('2.0.0');
    box.saveTemplate('switched-to-2.0.0');
  });

  it.each(RECOVER)('recover killed at %s', async (point) => {
    box.useTemplate('switched-to-2.0.0');
    expect(currentOf(box.root)).toBe('2.0.0');
    // The units of 2.0.0 are the bundled ones, so going back re-applies 1.1.0's (core/web differ).
    const killed = await box.cli(['recover'], { killAt: point });
    expect(killed.signal, `recover not killed at ${point} (exit ${killed.exitCode}): ${killed.stderr}`).toBe('SIGKILL');
    const cli = next(point === RECOVER[0]);
    const again = await cli(['recover']);
    expect(again.exitCode, again.stderr).toBe(0);
    const problems = await checkInvariants(box.root, cli, { allowed: ['1.1.0'], old: '1.1.0', next: { install: ['2.0.0'] } });
    expect(problems, `after recover was killed at ${point}`).toEqual([]);
    survived.recover++;
  });
});
