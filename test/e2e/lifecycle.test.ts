import { existsSync } from 'node:fs';
import path from 'node:path';
import { APP_SERVICES } from '../../scripts/sample-app.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootDevice,
  currentVersion,
  explain,
  httpGet,
  mainPidUid,
  servedVersion,
  smolotchi,
  smolotchiJson,
  sandboxAvailable,
  unitInfo,
  verifyInstalledUnits,
  type ExecResult,
  type Sandbox,
} from '../support/sandbox.js';

// Install, upgrade, rollback and boot-time recovery of good releases against a real systemd,
// with the CLI run inside exactly as an operator types it (no --root, the real systemctl).
const available = sandboxAvailable();


interface Deploy {
  kind: string;
  status: string;
  fromVersion: string | null;
  toVersion: string | null;
  commit: string | null;
  error: string | null;
}

describe.skipIf(!available)('e2e: install, upgrade, rollback on a real systemd', () => {
  let sb: Sandbox;
  let tags: Record<string, string>;

  beforeAll(async () => {
    ({ sb, tags } = await bootDevice([{ version: '1.0.0' }, { version: '1.1.0' }, { version: '1.2.0', dropUnit: 'smolotchi-ai.service' }]));
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it('installs a good release: units active, web serves its version, processes run as smolotchi', async () => {
    // --source given here; later commands take it from /etc/smolotchi/env.
    const r = await smolotchi(sb, ['release', 'install', '1.0.0', '--source', path.join(sb.workDir, 'repo')]);
    expect(r.exitCode, explain(r)).toBe(0);
    expect(await currentVersion(sb)).toBe('1.0.0');
    expect(await servedVersion(sb)).toBe('1.0.0');
    const uid = Number((await sb.exec(['id', '-u', 'smolotchi'])).stdout.trim());
    for (const unit of APP_SERVICES) {
      expect((await unitInfo(sb, unit)).ActiveState, unit).toBe('active');
      expect(await mainPidUid(sb, unit), unit).toBe(uid);
    }
    const web = await httpGet(sb, 'http://127.0.0.1:8080/');
    expect(JSON.parse(web.status === 200 ? web.body : '{}')).toMatchObject({ uid, version: '1.0.0' });
  });

  it('runs the services under ProtectSystem=strict with the release tree read-only', async () => {
    for (const unit of APP_SERVICES) {
      const r = await sb.exec(['systemctl', 'show', '-p', 'ProtectSystem', '--value', unit]);
      expect(r.stdout.trim(), unit).toBe('strict');
    }
    const probe = await httpGet(sb, 'http://127.0.0.1:8080/probe/write-code');
    expect(probe.status, JSON.stringify(probe)).toBe(200);
    const body = JSON.parse(probe.status === 200 ? probe.body : '{}') as { writable: boolean; error: string };
    expect(body.writable).toBe(false);
    expect(body.error).toMatch(/Read-only file system|Permission denied/);
    // The interpreter never had to write bytecode next to the code: it was compiled at install.
    const pycs = await sb.exec(['find', '/opt/smolotchi/current/smolotchi', '-name', '*.pyc']);
    expect(pycs.stdout).toMatch(/cli\..*\.pyc/);
  });

  it('renders unit files that `systemd-analyze verify` accepts', async () => {
    const { units, result } = await verifyInstalledUnits(sb);
    expect(units).toEqual(expect.arrayContaining([...APP_SERVICES, 'smolotchi-prune.service', 'smolotchi-prune.timer']));
    expect(units).toContain('smolotchi-release-check.service');
    expect(result.exitCode, explain(result)).toBe(0);
    expect(result.stderr.trim(), explain(result)).toBe('');
  });

  it('--dry-run changes nothing: no release tree, no flip, no restart', async () => {
    const core = await unitInfo(sb, 'smolotchi-core.service');
    const r = await smolotchi(sb, ['release', 'install', '1.1.0', '--dry-run']);
    expect(r.exitCode, explain(r)).toBe(0);
    expect(existsSync(sb.fsPath('/opt/smolotchi/releases/1.1.0'))).toBe(false);
    expect(await currentVersion(sb)).toBe('1.0.0');
    expect((await unitInfo(sb, 'smolotchi-core.service')).MainPID).toBe(core.MainPID);
  });

  it('upgrades: the new version is served and history records the commit', async () => {
    const r = await smolotchi(sb, ['release', 'install', '1.1.0', '--verbose']);
    expect(r.exitCode, explain(r)).toBe(0);
    // Same requirements: imported from 1.0.0's venv (read-only, in a mount namespace of its own) while cloned.
    expect(r.stderr).toContain("smoke-imported from /opt/smolotchi/releases/1.0.0's identical venv, beside the clone");
    expect(await currentVersion(sb)).toBe('1.1.0');
    expect(await servedVersion(sb)).toBe('1.1.0');
    // Core restarts in a call of its own, web and ai in the next: they start only once core is READY.
    const stamp = async (unit: string, prop: string) => Number((await sb.exec(['systemctl', 'show', '-p', prop, '--value', unit])).stdout.trim());
    const coreReady = await stamp('smolotchi-core.service', 'ActiveEnterTimestampMonotonic');
    expect(coreReady).toBeGreaterThan(0);
    for (const unit of ['smolotchi-web.service', 'smolotchi-ai.service']) expect(await stamp(unit, 'ExecMainStartTimestampMonotonic')).toBeGreaterThanOrEqual(coreReady);
    const { json } = await smolotchiJson<{ schemaVersion: number; deploys: Deploy[] }>(sb, ['release', 'history']);
    expect(json.schemaVersion).toBe(1);
    expect(json.deploys[0]).toMatchObject({ kind: 'install', status: 'succeeded', fromVersion: '1.0.0', toVersion: '1.1.0', commit: tags['1.1.0'] });
    expect(json.deploys.find((d) => d.toVersion === '1.0.0')).toMatchObject({ kind: 'install', status: 'succeeded', commit: tags['1.0.0'] });
  });

  it('rolls back to the previous release', async () => {
    const r = await smolotchi(sb, ['release', 'rollback']);
    expect(r.exitCode, explain(r)).toBe(0);
    expect(await currentVersion(sb)).toBe('1.0.0');
    expect(await servedVersion(sb)).toBe('1.0.0');
    const { json } = await smolotchiJson<{ deploys: Deploy[] }>(sb, ['release', 'history', '--limit', '1']);
    expect(json.deploys).toHaveLength(1);
    expect(json.deploys[0]).toMatchObject({ kind: 'rollback', status: 'succeeded', fromVersion: '1.1.0', toVersion: '1.0.0' });
  });

  it('rolls back --to a named release', async () => {
    const r = await smolotchi(sb, ['release', 'rollback', '--to', '1.1.0']);
    expect(r.exitCode, explain(r)).toBe(0);
    expect(await currentVersion(sb)).toBe('1.1.0');
    expect(await servedVersion(sb)).toBe('1.1.0');
    const { json } = await smolotchiJson<{ current: string; lastGood: string; degraded: boolean; drift: boolean }>(sb, ['release', 'status']);
    expect(json).toMatchObject({ current: '1.1.0', lastGood: '1.1.0', degraded: false, drift: false });
  });

  it('a unit disabled by hand is enabled again by the next deploy; units enabled already are not asked again', async () => {
    const enabled = async (unit: string) => (await sb.exec(['systemctl', 'is-enabled', unit])).stdout.trim();
    expect((await sb.exec(['systemctl', 'disable', 'smolotchi-web.service'])).exitCode).toBe(0);
    expect(await enabled('smolotchi-web.service')).toBe('disabled');
    const back = await smolotchi(sb, ['release', 'rollback', '--to', '1.0.0', '--verbose']);
    expect(back.exitCode, explain(back)).toBe(0);
    expect(back.stderr).toContain('units: unchanged');
    expect(back.stderr).toMatch(/\$ systemctl --no-ask-password enable -- /);
    expect(await enabled('smolotchi-web.service')).toBe('enabled');
    const again = await smolotchi(sb, ['release', 'rollback', '--to', '1.1.0', '--verbose']);
    expect(again.exitCode, explain(again)).toBe(0);
    expect(again.stderr).toContain('units: unchanged');
    expect(again.stderr).not.toMatch(/ enable -- /);
    for (const unit of ['smolotchi-core.service', 'smolotchi-ai.service', 'smolotchi-web.service', 'smolotchi-prune.timer']) expect(await enabled(unit)).toBe('enabled');
    expect(await currentVersion(sb)).toBe('1.1.0');
  });

  it('stops and removes a unit the new release no longer ships', async () => {
    expect((await unitInfo(sb, 'smolotchi-ai.service')).ActiveState).toBe('active');
    const r = await smolotchi(sb, ['release', 'install', 'latest']);
    expect(r.exitCode, explain(r)).toBe(0);
    expect(await currentVersion(sb)).toBe('1.2.0');
    expect(await servedVersion(sb)).toBe('1.2.0');
    expect(existsSync(sb.fsPath('/etc/systemd/system/smolotchi-ai.service'))).toBe(false);
    expect(existsSync(sb.fsPath('/etc/systemd/system/smolotchi-ai.service.d'))).toBe(false);
    const ai = await unitInfo(sb, 'smolotchi-ai.service');
    expect(ai.ActiveState).toBe('inactive');
    expect(ai.LoadState).toBe('not-found');
    const procs = await sb.exec(['pgrep', '-f', 'smolotchi.ai.worker']);
    expect(procs.stdout.trim()).toBe('');
    // A release's own packaging/systemd renders units systemd accepts too.
    const { result } = await verifyInstalledUnits(sb);
    expect(result.exitCode, explain(result)).toBe(0);
  });

  it('lists releases with current and last good marked', async () => {
    const { json } = await smolotchiJson<{ schemaVersion: number; releases: { version: string; complete: boolean; current: boolean; bad: boolean }[] }>(
      sb,
      ['release', 'list'],
    );
    expect(json.schemaVersion).toBe(1);
    expect(json.releases.map((r) => r.version).sort()).toEqual(['1.0.0', '1.1.0', '1.2.0']);
    expect(json.releases.find((r) => r.current)?.version).toBe('1.2.0');
    expect(json.releases.every((r) => r.complete && !r.bad)).toBe(true);
  });

  it('`smolotchi status` is the app\'s: run from the current release as the smolotchi user', async () => {
    const r = await smolotchi(sb, ['status']);
    expect(r.exitCode, explain(r)).toBe(0);
    const uid = Number((await sb.exec(['id', '-u', 'smolotchi'])).stdout.trim());
    expect(JSON.parse(r.stdout)).toEqual({
      app: 'smolotchi',
      version: await currentVersion(sb),
      uid,
      db: '/var/lib/smolotchi/events.db',
      config: '/etc/smolotchi/config.toml',
      artifact_root: '/var/lib/smolotchi/artifacts',
    });
  });

  it('boot-time recovery: smolotchi-release-check.service runs `release recover` and succeeds', async () => {
    const r = await sb.exec(['systemctl', 'start', 'smolotchi-release-check.service']);
    expect(r.exitCode, explain(r)).toBe(0);
    const info = await unitInfo(sb, 'smolotchi-release-check.service');
    expect(info.Result).toBe('success');
    expect(await currentVersion(sb)).toBe('1.2.0');
    expect(await servedVersion(sb)).toBe('1.2.0');
  });

  it('a unit whose start limit was used up is reset and restarted by the next deploy, which says so', async () => {
    const web = 'smolotchi-web.service';
    // A daemon-reload forgets the start counts (systemd 252), so the deploy that meets the limit is
    // one between identical units, with no reload: 1.1.0 -> 1.0.0, as most rollbacks are.
    const back = await smolotchi(sb, ['release', 'rollback', '--to', '1.1.0']);
    expect(back.exitCode, explain(back)).toBe(0);
    // Restart it by hand until systemd refuses (the bundled units allow 10 starts in 60 s): the
    // loop ends on the refusal, bounded by a count, never by the clock.
    let refused: ExecResult | undefined;
    for (let i = 0; i < 30 && !refused; i++) {
      const r = await sb.exec(['systemctl', 'restart', web]);
      if (r.exitCode !== 0) refused = r;
    }
    expect(refused, 'systemd never refused a restart of the web unit').toBeDefined();
    expect(refused!.stderr).toContain('start of the service was attempted too often');
    expect((await unitInfo(sb, web)).Result).toBe('start-limit-hit');

    const r = await smolotchi(sb, ['release', 'rollback', '--to', '1.0.0', '--verbose']);
    expect(r.exitCode, explain(r)).toBe(0);
    expect(r.stderr, explain(r)).toMatch(/warning: start limit hit for smolotchi-web\.service\b/);
    expect(r.stderr).toContain(`$ systemctl --no-ask-password reset-failed -- ${web}`);
    expect(r.stderr).toContain('units: unchanged');
    expect(await currentVersion(sb)).toBe('1.0.0');
    expect(await servedVersion(sb)).toBe('1.0.0');
    expect((await unitInfo(sb, web)).ActiveState).toBe('active');
    const { json } = await smolotchiJson<{ current: string; lastGood: string; degraded: boolean }>(sb, ['release', 'status']);
    expect(json).toMatchObject({ current: '1.0.0', lastGood: '1.0.0', degraded: false });
  });
});
