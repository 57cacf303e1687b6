import { APP_SERVICES } from '../../scripts/sample-app.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootDevice,
  currentVersion,
  explain,
  servedVersion,
  smolotchi,
  smolotchiJson,
  sandboxAvailable,
  unitInfo,
  servedOnceUp,
  type Sandbox,
} from '../support/sandbox.js';

// Power loss in the middle of an install (the test-only SMOLOTCHI_TEST_KILL_AT hook SIGKILLs the
// CLI at a journaled step), then a simulated boot: the app units are down, the boot-time
// smolotchi-release-check.service repairs, the app units start. The device must come up on a
// complete release with matching units, and the next install must just work (DESIGN I1-I7).
const available = sandboxAvailable();

// Journaled step to die at, and the (newer) version being installed when it happens.
const KILL_POINTS: [string, string][] = [
  ['venv', '1.1.0'],
  ['restart', '1.2.0'],
  ['health-gate', '1.3.0'],
];

interface Status {
  current: string | null;
  degraded: boolean;
  drift: boolean;
  lock: { alive: boolean } | null;
}

describe.skipIf(!available)('e2e: interrupted install, then boot-time recovery', () => {
  let sb: Sandbox;

  beforeAll(async () => {
    const versions = [{ version: '1.0.0' }, ...KILL_POINTS.map(([, version]) => ({ version })), { version: '1.4.0', schema: 1 }, { version: '1.5.0', schema: 2 }];
    ({ sb } = await bootDevice(versions, { install: '1.0.0' }));
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it.each(KILL_POINTS)('killed at step %s (installing %s): boots into a complete release, next install succeeds', async (step, version) => {
    const before = await currentVersion(sb);
    const killed = await smolotchi(sb, ['release', 'install', version], { env: { SMOLOTCHI_TEST_KILL_AT: step } });
    expect(killed.exitCode, explain(killed)).not.toBe(0);

    // "Reboot": the app is down, the check unit (ordered before it) repairs, then the app starts.
    await reboot(sb);
    const boot = await sb.exec(['systemctl', 'start', 'smolotchi-release-check.service']);
    expect(boot.exitCode, explain(boot)).toBe(0);
    const started = await sb.exec(['systemctl', 'start', ...APP_SERVICES]);
    expect(started.exitCode, explain(started)).toBe(0);

    const current = await currentVersion(sb);
    expect([before, version]).toContain(current);
    const { json: status } = await smolotchiJson<Status>(sb, ['release', 'status']);
    expect(status).toMatchObject({ current, degraded: false, drift: false });
    expect(status.lock?.alive ?? false).toBe(false);
    const { json: history } = await smolotchiJson<{ deploys: { status: string; step: string | null }[] }>(sb, ['release', 'history']);
    expect(history.deploys.filter((d) => d.status === 'running')).toEqual([]);
    expect(history.deploys.some((d) => d.status === 'interrupted' && d.step === step), JSON.stringify(history.deploys)).toBe(true);
    for (const unit of APP_SERVICES) expect((await unitInfo(sb, unit)).ActiveState, unit).toBe('active');
    expect(await servedOnceUp(sb, current!)).toBe(current);

    const next = await smolotchi(sb, ['release', 'install', version, ...(current === version ? ['--force'] : [])]);
    expect(next.exitCode, explain(next)).toBe(0);
    expect(await servedVersion(sb)).toBe(version);
  });

  it('a power cut after the new release migrated the app data: at boot its snapshot goes back before the app starts, and no start job is cancelled', async () => {
    const first = await smolotchi(sb, ['release', 'install', '1.4.0']);
    expect(first.exitCode, explain(first)).toBe(0); // its core creates the database at schema 1
    const killed = await smolotchi(sb, ['release', 'install', '1.5.0'], { env: { SMOLOTCHI_TEST_KILL_AT: 'health-gate' } });
    expect(killed.exitCode, explain(killed)).not.toBe(0);
    expect(await schemaOf(sb)).toBe(2); // 1.5.0's core migrated it before the power cut

    // "Reboot": the app is down; then one transaction starts the check unit and the app units
    // ordered after it, as boot does. A stop from the check would cancel their start jobs.
    await reboot(sb);
    const boot = await sb.exec(['systemctl', 'start', 'smolotchi-release-check.service', ...APP_SERVICES]);
    expect(boot.exitCode, explain(boot)).toBe(0);
    for (const unit of APP_SERVICES) expect((await unitInfo(sb, unit)).ActiveState, unit).toBe('active');
    expect(await currentVersion(sb)).toBe('1.4.0');
    expect(await servedOnceUp(sb, '1.4.0')).toBe('1.4.0');
    expect(await schemaOf(sb)).toBe(1);
    const { json: history } = await smolotchiJson<{ deploys: { kind: string; toVersion: string; status: string }[] }>(sb, ['release', 'history']);
    expect(history.deploys.find((d) => d.toVersion === '1.5.0')).toMatchObject({ kind: 'install', status: 'interrupted' });
  });
});

/**
 * What a reboot leaves of the app: its units stopped, and systemd's start counters fresh. The cases
 * share one device and start its units a dozen times within a minute, past the units'
 * StartLimitBurst; a real reboot forgets those starts, and so does this one.
 */
async function reboot(sb: Sandbox): Promise<void> {
  await sb.exec(['systemctl', 'stop', ...APP_SERVICES]);
  const reset = await sb.exec(['systemctl', 'reset-failed', ...APP_SERVICES]);
  expect(reset.exitCode, explain(reset)).toBe(0);
}

/** The schema version of the app's database on the device. */
async function schemaOf(sb: Sandbox): Promise<number> {
  const py = 'import sqlite3; print(sqlite3.connect("file:/var/lib/smolotchi/events.db?mode=ro", uri=True).execute("SELECT MAX(version) FROM schema_version").fetchone()[0])';
  const r = await sb.exec(['/usr/bin/python3', '-c', py]);
  expect(r.exitCode, explain(r)).toBe(0);
  return Number(r.stdout.trim());
}
