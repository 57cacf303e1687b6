import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeLayout } from '../../src/core/layout.js';
import { makeCrashBox, type CrashBox } from '../support/crash-fixture.js';
import { runGit } from '../support/git-repo.js';
import { checkInvariants, currentOf } from '../support/invariants.js';

/**
 * SIGKILL `install` at every journaled step and at points inside the steps, then let the next
 * command's recovery run and prove I1-I7. The process must die by SIGKILL (a renamed or vanished
 * point fails the case instead of passing silently). The killed run is always a real process; the
 * commands after it run in the test process (box.run), except in the first case and the git-fetch
 * case, which run them all through the CLI.
 */

interface Case {
  point: string;
  template: 'base' | 'empty';
  args: string[];
  /** I2: what current may name after recovery. */
  allowed: (string | null)[];
  /** I7: what to install next (in turn), before a rollback. */
  next: string[];
}

// 1.0.0 -> 1.1.0: venv cloned by hard links, ai unit removed, core and web changed, 0.9.0 pruned (keep 2).
const UPGRADE = [
  'lock-acquired', 'recovered', 'fetch', 'staging-created', 'extract-entry-1', 'extract-entry-6', 'fetched',
  'promote', 'promote-renamed', 'venv', 'venv-cloned', 'venv-compiled', 'venv-smoke-done',
  'stamp', 'tree-synced', 'atomic-temp:.smolotchi-release.json', 'atomic-renamed:.smolotchi-release.json', 'stamp-written',
  'render-units', 'write-units', 'atomic-temp:smolotchi-core.service', 'atomic-temp:smolotchi-web.service',
  'stop-removed-units', 'atomic-renamed:smolotchi-core.service', 'atomic-renamed:smolotchi-web.service',
  'units-written', 'daemon-reload', 'daemon-reloaded', 'units-enabled',
  'flip', 'flip-symlinked', 'flip-renamed', 'restart', 'restarted:smolotchi-core.service', 'restarted:smolotchi-web.service',
  'lock-reasserted', 'health-gate', 'gate-units-active', 'gate-settled', 'gate-passed', 'mark', 'marked',
  'prune', 'prune-remove', 'trash-renamed:0.9.0', 'prune-removed', 'install-finished',
];
// 1.0.0 -> 2.0.0: other requirements (a shipped wheel): 1.0.0's venv is cloned and pip adds the wheel.
const INCREMENTAL_VENV = ['venv-cloned', 'venv-incremental-pip-done', 'venv-compiled'];
// 1.0.0 -> 1.2.0: its health check fails; the automatic rollback re-activates 1.0.0 (steps repeat: #2;
// both render the same units, so neither writes them nor reloads systemd).
const FAILING = ['gate-failed', 'auto-rollback', 'render-units#2', 'units-unchanged#2', 'flip#2', 'flip-symlinked#2', 'flip-renamed#2', 'restart#2', 'gate-passed'];
// 1.0.0 -> 3.0.0: a pip option in its requirements: python -m venv and pip run afresh.
const FRESH_VENV = ['venv-created', 'venv-pip-done', 'venv-compiled'];
// First install on an empty device (nothing to go back to), and a first install that fails its gate.
const FIRST = ['write-units', 'flip-renamed', 'restart', 'gate-passed', 'marked'];
const FIRST_FAILING = ['auto-rollback', 'deactivate', 'deactivated-units'];

const CASES: Case[] = [
  ...UPGRADE.map((point) => ({ point, template: 'base' as const, args: ['install', '1.1.0'], allowed: ['1.0.0', '1.1.0'], next: ['1.1.0'] })),
  ...INCREMENTAL_VENV.map((point) => ({ point, template: 'base' as const, args: ['install', '2.0.0'], allowed: ['1.0.0', '2.0.0'], next: ['2.0.0'] })),
  ...FRESH_VENV.map((point) => ({ point, template: 'base' as const, args: ['install', '3.0.0'], allowed: ['1.0.0', '3.0.0'], next: ['3.0.0'] })),
  ...FAILING.map((point) => ({ point, template: 'base' as const, args: ['install', '1.2.0'], allowed: ['1.0.0', '1.2.0'], next: ['1.1.0'] })),
  ...FIRST.map((point) => ({ point, template: 'empty' as const, args: ['install', '1.0.0'], allowed: [null, '1.0.0'], next: ['1.0.0', '1.1.0'] })),
  ...FIRST_FAILING.map((point) => ({ point, template: 'empty' as const, args: ['install', '1.2.0'], allowed: [null, '1.2.0'], next: ['1.0.0', '1.1.0'] })),
];

let box: CrashBox;
let survived = 0;
const started = Date.now();

beforeAll(async () => {
  box = await makeCrashBox('kill-install', { SMOLOTCHI_RELEASE_KEEP: 2 });
  box.saveTemplate('empty');
  box.useTemplate('empty');
  for (const v of ['0.9.0', '1.0.0']) {
    const r = await box.cli(['install', v]);
    expect(r.exitCode, r.stderr).toBe(0);
  }
  box.saveTemplate('base');
});

afterAll(() => {
  console.log(`[crash] install: ${survived}/${CASES.length} kill points survived (I1-I7 after recovery) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  box?.cleanup();
});

describe('install killed at a kill point, then recovered', () => {
  it('covers at least 25 kill points', () => {
    expect(new Set(CASES.map((c) => `${c.args.join(' ')} @ ${c.point}`)).size).toBeGreaterThanOrEqual(25);
  });

  it.each(CASES)('$args.1 killed at $point', async (c) => {
    box.useTemplate(c.template);
    const before = currentOf(box.root);
    const killed = await box.cli(c.args, { killAt: c.point });
    expect(killed.signal, `not killed at ${c.point} (exit ${killed.exitCode}): ${killed.stderr}`).toBe('SIGKILL');
    const cli = (args: string[]) => (c === CASES[0] ? box.cli(args) : box.run(args));
    const recovered = await cli(['recover']);
    expect(recovered.exitCode, recovered.stderr).toBe(0);
    const problems = await checkInvariants(box.root, cli, { allowed: c.allowed, old: before, next: { install: c.next } });
    expect(problems, `after a kill at ${c.point} (current was ${before})`).toEqual([]);
    survived++;
  });
});

describe('a git fetch killed while it updated refs', () => {
  it('leaves ref lock files that the next command removes, so a new tag still installs', async () => {
    box.useTemplate('base');
    // What a SIGKILLed `git fetch` leaves when it dies between creating and renaming its lock files.
    await runGit(box.repo, ['tag', '-a', '-m', 'release 2.1.0', 'v2.1.0', 'v2.0.0^{commit}']);
    const mirror = makeLayout(box.root).mirrorDir;
    for (const lock of ['refs/tags/v2.1.0.lock', 'packed-refs.lock']) writeFileSync(path.join(mirror, lock), '');
    const r = await box.cli(['install', '2.1.0']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/removed stale git lock file\(s\) a killed fetch left in the mirror: packed-refs\.lock, refs\/tags\/v2\.1\.0\.lock/);
    expect(await checkInvariants(box.root, (args) => box.cli(args), { allowed: ['2.1.0'], next: { install: ['2.1.0'] } })).toEqual([]);
  });
});
