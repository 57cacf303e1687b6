import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppBehaviour } from '../../scripts/sample-app.js';
import {
  bootDevice,
  CATCH_LATE_FAILURES_SETTLE_SECONDS,
  currentVersion,
  explain,
  servedVersion,
  smolotchi,
  smolotchiJson,
  sandboxAvailable,
  unitInfo,
  type Sandbox,
} from '../support/sandbox.js';

// Releases that fail in each way the health gate must catch: each is rolled back automatically
// (exit 5) and the last good release serves again; one that cannot even be imported never
// touches `current`, the units or the services.
const available = sandboxAvailable();

interface Status {
  current: string | null;
  lastGood: string | null;
  bad: string[];
  degraded: boolean;
  lastDeploy: { kind: string; status: string; toVersion: string | null; error: string | null } | null;
}
interface Deploy {
  kind: string;
  status: string;
  toVersion: string | null;
  error: string | null;
}

const GOOD = '1.0.0';
// version, behaviour, and what the recorded reason must name.
const BAD: [string, AppBehaviour, RegExp][] = [
  ['2.0.0', 'web-never-starts', /smolotchi-web\.service/],
  ['2.1.0', 'core-crash-loop', /smolotchi-core\.service/],
  ['2.2.0', 'watchdog-exceeded', /smolotchi-core\.service.*watchdog/],
  ['2.3.0', 'health-check-fails', /packaging\/health-check/],
];
const UNIMPORTABLE = '2.4.0';

async function unitFilesDigest(sb: Sandbox): Promise<string> {
  const r = await sb.exec(['sh', '-c', 'cd /etc/systemd/system && find . -path "./smolotchi-*" -type f | sort | xargs sha256sum']);
  return createHash('sha256').update(r.stdout).digest('hex');
}

describe.skipIf(!available)('e2e: health gate and automatic rollback on a real systemd', () => {
  let sb: Sandbox;

  beforeAll(async () => {
    const versions = [
      { version: GOOD },
      ...BAD.map(([version, behaviour]) => ({ version, behaviour })),
      { version: UNIMPORTABLE, behaviour: 'unimportable' as const },
    ];
    ({ sb } = await bootDevice(versions, { install: GOOD, settings: { SMOLOTCHI_RELEASE_SETTLE_SECONDS: CATCH_LATE_FAILURES_SETTLE_SECONDS } }));
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it.each(BAD)('%s (%s): exit 5, the good release serves again, history and status say why', async (version, _kind, names) => {
    const r = await smolotchi(sb, ['release', 'install', version]);
    expect(r.exitCode, explain(r)).toBe(5);
    expect(await currentVersion(sb)).toBe(GOOD);
    expect(await servedVersion(sb)).toBe(GOOD);
    for (const unit of ['smolotchi-core.service', 'smolotchi-web.service', 'smolotchi-ai.service']) {
      expect((await unitInfo(sb, unit)).ActiveState, unit).toBe('active');
    }

    const { json: status } = await smolotchiJson<Status>(sb, ['release', 'status']);
    expect(status).toMatchObject({ current: GOOD, lastGood: GOOD, degraded: false });
    expect(status.bad).toContain(version);
    // The reason of the failed install, whichever row (install or its auto-rollback) status shows.
    expect.soft(status.lastDeploy?.error ?? '', `status.lastDeploy: ${JSON.stringify(status.lastDeploy)}`).toMatch(names);

    const { json: history } = await smolotchiJson<{ deploys: Deploy[] }>(sb, ['release', 'history', '--limit', '5']);
    const install = history.deploys.find((d) => d.kind === 'install' && d.toVersion === version);
    expect(install, JSON.stringify(history.deploys)).toMatchObject({ status: 'rolled-back' });
    expect(install?.error ?? '').toMatch(names);
  });

  it('refuses to install a release marked bad again without --force', async () => {
    const before = await unitInfo(sb, 'smolotchi-core.service');
    const r = await smolotchi(sb, ['release', 'install', BAD[0]![0]]);
    expect(r.exitCode, explain(r)).not.toBe(0);
    expect(r.exitCode, explain(r)).not.toBe(5);
    expect(r.stderr).toMatch(/bad|--force/);
    expect(await currentVersion(sb)).toBe(GOOD);
    expect((await unitInfo(sb, 'smolotchi-core.service')).MainPID).toBe(before.MainPID);
  });

  it('an unimportable release fails its build (exit 1): current, units and services untouched', async () => {
    const units = await unitFilesDigest(sb);
    const before = await Promise.all(['smolotchi-core.service', 'smolotchi-web.service'].map((u) => unitInfo(sb, u)));
    const r = await smolotchi(sb, ['release', 'install', UNIMPORTABLE]);
    expect(r.exitCode, explain(r)).toBe(1);
    expect(r.stderr).toMatch(/import/i);
    expect(await currentVersion(sb)).toBe(GOOD);
    expect(await unitFilesDigest(sb)).toBe(units);
    const after = await Promise.all(['smolotchi-core.service', 'smolotchi-web.service'].map((u) => unitInfo(sb, u)));
    expect(after.map((u) => [u.ActiveState, u.MainPID, u.NRestarts])).toEqual(before.map((u) => [u.ActiveState, u.MainPID, u.NRestarts]));
    expect(await servedVersion(sb)).toBe(GOOD);
    const { json } = await smolotchiJson<{ deploys: Deploy[] }>(sb, ['release', 'history', '--limit', '1']);
    expect(json.deploys[0]).toMatchObject({ kind: 'install', toVersion: UNIMPORTABLE, status: 'failed' });
    // Never complete, so never a candidate for `current`.
    const { json: list } = await smolotchiJson<{ releases: { version: string; complete: boolean }[] }>(sb, ['release', 'list']);
    expect(list.releases.find((x) => x.version === UNIMPORTABLE)?.complete ?? false).toBe(false);
    await expect(fs.stat(sb.fsPath(`/opt/smolotchi/releases/${UNIMPORTABLE}/.smolotchi-release.json`))).rejects.toThrow();
  });
});
