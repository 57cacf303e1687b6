import { existsSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootDevice,
  currentVersion,
  explain,
  servedVersion,
  smolotchi,
  smolotchiJson,
  sandboxAvailable,
  type Sandbox,
} from '../support/sandbox.js';

// Both bad: the new release fails its gate and so does the rollback to the previous one (broken on
// purpose here, as a dying SD card or a hand edit would). The tool stops, exits 6 and says so.
const available = sandboxAvailable();

interface Status {
  current: string | null;
  degraded: boolean;
  degradedReason?: string | null;
  lastDeploy: { status: string; error: string | null } | null;
}

describe.skipIf(!available)('e2e: degraded when the automatic rollback fails too', () => {
  let sb: Sandbox;

  beforeAll(async () => {
    const versions = [{ version: '1.0.0' }, { version: '2.0.0', behaviour: 'web-never-starts' as const }, { version: '3.0.0' }];
    ({ sb } = await bootDevice(versions, { install: '1.0.0' }));
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it('exits 6 and status reports degraded with the reason', async () => {
    // Break the running release's code behind the tool's back: its web UI will not start again.
    const init = sb.fsPath('/opt/smolotchi/releases/1.0.0/smolotchi/__init__.py');
    const text = await fs.readFile(init, 'utf8');
    await fs.writeFile(init, text.replace(/^BEHAVIOUR = .*$/m, 'BEHAVIOUR = "web-never-starts"'));

    const r = await smolotchi(sb, ['release', 'install', '2.0.0']);
    expect(r.exitCode, explain(r)).toBe(6);
    expect(`${r.stdout}\n${r.stderr}`, explain(r)).toMatch(/degraded/i);

    const { r: st, json } = await smolotchiJson<Status>(sb, ['release', 'status']);
    expect(st.exitCode, explain(st)).toBe(6);
    expect(json.degraded).toBe(true);
    expect(json.degradedReason ?? '').toMatch(/smolotchi-web\.service/);
    expect(json.lastDeploy?.status).toBe('degraded');

    const { json: history } = await smolotchiJson<{ deploys: { kind: string; status: string; toVersion: string | null }[] }>(sb, [
      'release',
      'history',
      '--limit',
      '3',
    ]);
    expect(history.deploys.some((d) => d.status === 'degraded'), JSON.stringify(history.deploys)).toBe(true);
    expect(history.deploys.find((d) => d.kind === 'install' && d.toVersion === '2.0.0')?.status).not.toBe('succeeded');
  });

  it('made at most one automatic flip, and nothing moves afterwards', async () => {
    const before = await currentVersion(sb);
    const { json } = await smolotchiJson<{ deploys: { kind: string; toVersion: string | null }[] }>(sb, ['release', 'history', '--limit', '50']);
    // The first install, the failed one, and at most one automatic rollback: no loop.
    expect(json.deploys.filter((d) => d.kind === 'auto-rollback').length, JSON.stringify(json.deploys)).toBeLessThanOrEqual(1);
    expect(json.deploys.length, JSON.stringify(json.deploys)).toBeLessThanOrEqual(3);
    // Nothing of ours is left running that could move anything later: no tool process, no lock.
    // ('[d]ist' keeps the pattern from matching the command line that runs pgrep itself.)
    const left = await sb.exec(['pgrep', '-af', '[d]ist/src/cli.js']);
    expect(left.stdout.trim(), left.stdout).toBe('');
    expect(existsSync(sb.fsPath('/run/smolotchi-release/release.lock')) || existsSync(sb.fsPath('/run/smolotchi/locks/release.lock'))).toBe(false);
    expect(await currentVersion(sb)).toBe(before);
    const { json: again } = await smolotchiJson<{ deploys: unknown[] }>(sb, ['release', 'history', '--limit', '50']);
    expect(again.deploys.length).toBe(json.deploys.length);
  });

  it('a good install afterwards clears degraded', async () => {
    const r = await smolotchi(sb, ['release', 'install', '3.0.0']);
    expect(r.exitCode, explain(r)).toBe(0);
    expect(await servedVersion(sb)).toBe('3.0.0');
    const { r: st, json } = await smolotchiJson<Status>(sb, ['release', 'status']);
    expect(st.exitCode, explain(st)).toBe(0);
    expect(json).toMatchObject({ current: '3.0.0', degraded: false });
  });
});
