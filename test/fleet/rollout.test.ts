import { existsSync, promises as fs, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunFleet, startFleet, type Fleet, type PlaybookRun } from '../../scripts/fleet.js';
import { FAIL_WEB_MARKER, createSampleRepo } from '../../scripts/sample-app.js';
import { runCli } from '../support/cli.js';
import { CLI, assertBuilt, baseDir, currentVersion, servedVersion, smolotchiJson, type Sandbox } from '../support/sandbox.js';

// The Ansible role and playbooks of packaging/ansible against 4 sandboxed devices (a real systemd
// each, reached by the real ssh client and sshd), through ansible-playbook and the inventory that
// fleet-sandbox generates. The devices boot once for the whole file; the scenarios build on each
// other in order, as an operator's day would.
const check = canRunFleet();
if (!check.ok) console.warn(`fleet (ansible + sandboxed devices) skipped: ${check.reason}`);

interface Deploy {
  kind: string;
  status: string;
  fromVersion: string | null;
  toVersion: string | null;
}

const explainRun = (r: PlaybookRun) => `exit ${r.exitCode}\n${r.output}`;

/** A sample repo with three releases (1.1.0's web UI fails where FAIL_WEB_MARKER exists), a signing key and the three signed packs. */
async function makeArtifacts(work: string): Promise<{ keys: string; key: string }> {
  const { repo } = await createSampleRepo(path.join(work, 'repo'), [
    { version: '1.0.0' },
    { version: '1.1.0', behaviour: 'web-fails-on-marker' },
    { version: '1.2.0' },
  ]);
  const keys = path.join(work, 'keys');
  const keygen = await runCli(['release', 'keygen', '--out', keys]);
  expect(keygen.exitCode, keygen.stderr).toBe(0);
  const key = readdirSync(keys).find((f) => f.endsWith('.key'))!;
  for (const version of ['1.0.0', '1.1.0', '1.2.0']) {
    const pack = await runCli(['release', 'pack', '--repo', repo, '--version', version, '--key', path.join(keys, key), '--out', path.join(work, 'artifacts')]);
    expect(pack.exitCode, pack.stderr).toBe(0);
  }
  return { keys, key };
}

describe.skipIf(!check.ok)('fleet: rollouts with Ansible to 4 sandboxed devices', () => {
  let fleet: Fleet;
  let work: string | undefined;
  let artifacts: string;
  let bootstrapVars: Record<string, unknown>;
  /** The variables every play gets: the checkout's CLI stands in for an installed tool (shared /usr). */
  let common: Record<string, unknown>;
  const devices: Record<string, Sandbox> = {};

  const device = async (host: string) => (devices[host] ??= await fleet.device(host));
  const history = async (host: string) => (await smolotchiJson<{ deploys: Deploy[] }>(await device(host), ['release', 'history'])).json.deploys;
  /** Logins the device's sshd accepted so far (its journal is private to the device). */
  const logins = async (host: string) => {
    const r = await (await device(host)).exec(['journalctl', '--no-pager', '-q', '-o', 'cat', '-t', 'sshd']);
    return r.stdout.split('\n').filter((l) => l.startsWith('Accepted publickey')).length;
  };
  const state = async (host: string) => ({ current: await currentVersion(await device(host)), served: await servedVersion(await device(host)) });

  beforeAll(async () => {
    assertBuilt();
    // Signed artifacts on the controller, as a release manager makes them, while the devices boot
    // (a boot mostly waits for systemd): only the controller reads them, through ansible-playbook.
    work = await fs.mkdtemp(path.join(baseDir(), 'smolotchi-fleet-work-'));
    const [booted, made] = await Promise.allSettled([startFleet(4), makeArtifacts(work)]);
    if (booted.status === 'fulfilled') fleet = booted.value;
    if (booted.status === 'rejected') throw booted.reason;
    if (made.status === 'rejected') throw made.reason;
    const { keys, key } = made.value;
    artifacts = path.join(work, 'artifacts');
    common = { smolotchi_release_cmd: `${process.execPath} ${CLI}`, smolotchi_release_artifacts: artifacts };
    bootstrapVars = {
      ...common,
      smolotchi_release_install_method: 'none',
      smolotchi_release_trusted_keys: [path.join(keys, key.replace(/\.key$/, '.pub'))],
      // Short gate windows: the fixture's units are up in well under a second.
      smolotchi_release_settle_seconds: 1,
      smolotchi_release_start_timeout: 30,
      smolotchi_release_http_timeout: 10,
    };
  });
  afterAll(async () => {
    await fleet?.destroy();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('bootstrap writes each device\'s settings and keys, and a second run changes nothing', async () => {
    const first = await fleet.playbook('bootstrap', bootstrapVars);
    expect(first.exitCode, explainRun(first)).toBe(0);
    for (const host of fleet.hosts) {
      const sb = await device(host);
      const env = await fs.readFile(sb.fsPath('/etc/smolotchi/env'), 'utf8');
      // Root's alone: the tool refuses git credentials in an env file others can read.
      expect((await fs.stat(sb.fsPath('/etc/smolotchi/env'))).mode & 0o777).toBe(0o600);
      expect(env).toMatch(/^SMOLOTCHI_RELEASE_SETTLE_SECONDS=1$/m);
      expect(env).not.toMatch(/SMOLOTCHI_RELEASE_KEEP/); // null: the tool's default applies
      // `release init` ran: the boot-time check unit is enabled on the device.
      const enabled = await sb.exec(['systemctl', 'is-enabled', 'smolotchi-release-check.service']);
      expect(enabled.stdout.trim(), `${host}: ${enabled.stderr}`).toBe('enabled');
      const keys = await fs.readdir(sb.fsPath('/etc/smolotchi/keys'));
      expect(keys.filter((f) => f.endsWith('.pub'))).toHaveLength(1);
    }
    const again = await fleet.playbook('bootstrap', bootstrapVars);
    expect(again.exitCode, explainRun(again)).toBe(0);
    for (const host of fleet.hosts) expect(again.recap[host]?.changed, explainRun(again)).toBe(0);
  });

  it('1. rolls a good release out to every device; a second rollout reports no change', async () => {
    const r = await fleet.playbook('rollout', { ...common, smolotchi_release_version: '1.0.0' });
    expect(r.exitCode, explainRun(r)).toBe(0);
    for (const host of fleet.hosts) {
      expect(await state(host), host).toEqual({ current: '1.0.0', served: '1.0.0' });
      const deploys = await history(host);
      expect(deploys.map((d) => [d.kind, d.toVersion, d.status]), host).toEqual([['install', '1.0.0', 'succeeded']]);
    }
    // The same rollout again (in one batch, to keep the suite short): nothing changes anywhere.
    const again = await fleet.playbook('rollout', { ...common, smolotchi_release_version: '1.0.0', smolotchi_release_canary: '100%' });
    expect(again.exitCode, explainRun(again)).toBe(0);
    for (const host of fleet.hosts) expect(again.recap[host]?.changed, `${host}\n${explainRun(again)}`).toBe(0);
    for (const host of fleet.hosts) expect(await history(host), host).toHaveLength(1);
  });

  it('2. a release failing on one device: the canary passes, the failing batch halts the play, later devices are never touched', async () => {
    await fs.writeFile(path.join(fleet.dir, 'dev2', 'fs', FAIL_WEB_MARKER), 'fail the web UI of 1.1.0 here\n');
    await fleet.closeConnections(); // every login from here on is a fresh one, seen by the device's sshd
    const loginsBefore = await logins('dev4');
    // Batches: [dev1] (canary), [dev2, dev3], [dev4]; the batch's good host goes back when dev2 fails.
    const r = await fleet.playbook('rollout', {
      ...common,
      smolotchi_release_version: '1.1.0',
      smolotchi_release_batch: '50%',
      smolotchi_release_rollback_batch_on_failure: true,
    });
    expect(r.exitCode, explainRun(r)).toBe(2); // ansible-playbook: a host failed
    expect(r.output).toMatch(/dev2: exit 5: 1\.1\.0 failed its health gate; the device rolled itself back to 1\.0\.0/);
    expect(r.output).toContain(FAIL_WEB_MARKER);
    expect(await state('dev1')).toEqual({ current: '1.1.0', served: '1.1.0' });
    expect(await state('dev2')).toEqual({ current: '1.0.0', served: '1.0.0' });
    expect((await history('dev2')).map((d) => [d.kind, d.toVersion, d.status])).toEqual([
      ['auto-rollback', '1.0.0', 'succeeded'],
      ['install', '1.1.0', 'rolled-back'],
      ['install', '1.0.0', 'succeeded'],
    ]);
    // dev3 installed 1.1.0 fine, then went back with its batch.
    expect(await state('dev3')).toEqual({ current: '1.0.0', served: '1.0.0' });
    expect((await history('dev3')).map((d) => [d.kind, d.toVersion, d.status])).toEqual([
      ['rollback', '1.0.0', 'succeeded'],
      ['install', '1.1.0', 'succeeded'],
      ['install', '1.0.0', 'succeeded'],
    ]);
    // dev4, a later batch: still the old release, no deploy, no ssh login, not in the play at all.
    expect(await state('dev4')).toEqual({ current: '1.0.0', served: '1.0.0' });
    expect(await history('dev4')).toHaveLength(1);
    expect(await logins('dev4')).toBe(loginsBefore);
    expect(Object.keys(r.recap).sort()).toEqual(['dev1', 'dev2', 'dev3']);
  });

  it('3. rollback.yml returns the updated devices to the previous release', async () => {
    const r = await fleet.playbook('rollback', { ...common, smolotchi_release_rollback_to: '1.0.0' });
    expect(r.exitCode, explainRun(r)).toBe(0);
    for (const host of fleet.hosts) expect(await state(host), host).toEqual({ current: '1.0.0', served: '1.0.0' });
    // Only dev1 ran 1.1.0; the others already ran 1.0.0 and were left alone.
    expect(r.recap.dev1?.changed, explainRun(r)).toBeGreaterThan(0);
    for (const host of ['dev2', 'dev3', 'dev4']) expect(r.recap[host]?.changed, `${host}\n${explainRun(r)}`).toBe(0);
    expect((await history('dev1'))[0]).toMatchObject({ kind: 'rollback', fromVersion: '1.1.0', toVersion: '1.0.0', status: 'succeeded' });
  });

  it('4. a device that is down fails its batch as unreachable and halts the rollout; 5. status.yml reports the fleet; re-running resumes', async () => {
    await fleet.stopDevice('dev3');
    delete devices.dev3;
    const vars = { ...common, smolotchi_release_version: '1.2.0', smolotchi_release_batch: '50%' };
    const halted = await fleet.playbook('rollout', vars);
    expect(halted.exitCode, explainRun(halted)).toBe(2);
    expect(halted.output).toMatch(/fatal: \[dev3\]: UNREACHABLE!/);
    expect(halted.output).toMatch(/"dev3: unreachable: /);
    expect(halted.recap.dev3?.failed, explainRun(halted)).toBe(1);
    expect(Object.keys(halted.recap).sort()).toEqual(['dev1', 'dev2', 'dev3']);
    // dev2 shares dev3's batch: it stopped with it, before installing anything.
    expect(await state('dev1')).toEqual({ current: '1.2.0', served: '1.2.0' });
    for (const host of ['dev2', 'dev4']) expect(await state(host), host).toEqual({ current: '1.0.0', served: '1.0.0' });

    // 5. The fleet report, with dev3 still down.
    const reportDir = path.join(fleet.dir, 'report');
    const status = await fleet.playbook('status', { ...common, smolotchi_release_report_dir: reportDir });
    expect(status.exitCode, explainRun(status)).toBe(0);
    const report = JSON.parse(await fs.readFile(path.join(reportDir, 'fleet-report.json'), 'utf8')) as {
      hosts: { host: string; reachable: boolean; current: string | null; lastGood: string | null; degraded: boolean }[];
      versions: Record<string, number>;
      unreachable: string[];
    };
    expect(report.versions).toEqual({ '1.0.0': 2, '1.2.0': 1 });
    expect(report.unreachable).toEqual(['dev3']);
    expect(report.hosts.map((h) => [h.host, h.reachable, h.current, h.lastGood, h.degraded])).toEqual([
      ['dev1', true, '1.2.0', '1.2.0', false],
      ['dev2', true, '1.0.0', '1.0.0', false],
      ['dev3', false, null, null, false],
      ['dev4', true, '1.0.0', '1.0.0', false],
    ]);
    const markdown = await fs.readFile(path.join(reportDir, 'fleet-report.md'), 'utf8');
    expect(markdown).toMatch(/^\| dev1 \| 1\.2\.0 \| 1\.2\.0 \| no \| #\d+ install 1\.0\.0 -> 1\.2\.0 succeeded/m);
    expect(markdown).toMatch(/^\| dev3 \| UNREACHABLE \|/m);
    expect(status.output).toMatch(/1\.0\.0: 2; 1\.2\.0: 1; unreachable: dev3/);

    // Power dev3 back on and run the same rollout again: it picks up where it stopped.
    await fleet.up();
    const resumed = await fleet.playbook('rollout', vars);
    expect(resumed.exitCode, explainRun(resumed)).toBe(0);
    expect(resumed.recap.dev1?.changed, explainRun(resumed)).toBe(0);
    for (const host of fleet.hosts) expect(await state(host), host).toEqual({ current: '1.2.0', served: '1.2.0' });
    // The artifacts went to a root-only folder on each device.
    const copied = (await device('dev4')).fsPath('/var/cache/smolotchi/artifacts/1.2.0');
    expect(existsSync(path.join(copied, 'smolotchi-1.2.0.manifest.json.sig'))).toBe(true);
    expect((await fs.stat(copied)).mode & 0o777).toBe(0o700);
  });
});
