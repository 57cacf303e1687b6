import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleRepo } from '../../scripts/sample-app.js';
import { runCli, writeEnvFile } from '../support/cli.js';
import { makeFakeSystemctl, type FakeSystemctl } from '../support/fake-systemctl.js';
import { changes, snapshot } from '../support/snapshot.js';

interface HistoryJson {
  schemaVersion: number;
  deploys: { id: number; kind: string; status: string; fromVersion: string | null; toVersion: string | null; commit: string | null; error: string | null; step: string | null }[];
}
interface StatusJson {
  schemaVersion: number;
  current: string | null;
  lastGood: string | null;
  bad: string[];
  degraded: boolean;
  degradedReason: string | null;
  drift: boolean;
  lastDeploy: { status: string; error: string | null } | null;
}

let work: string;
let repo: string;
let tags: Record<string, string>;

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-engine-'));
  ({ repo, tags } = await createSampleRepo(path.join(work, 'app'), [
    { version: '1.0.0' },
    { version: '1.1.0' },
    { version: '1.2.0', behaviour: 'health-check-fails' },
    { version: '1.3.0', behaviour: 'unimportable' },
    { version: '1.4.0' },
    { version: '2.0.0-rc.1' },
  ]));
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

type Sandbox = { root: string; fake: FakeSystemctl; cli: (...args: string[]) => ReturnType<typeof runCli> };

/** A sandbox root at `root` with a fresh recording systemctl (named after `name`) and a zero settle window. */
function sandboxAt(root: string, name: string): Sandbox {
  const fake = makeFakeSystemctl(mkdtempSync(path.join(work, `${name}-fake-`)));
  writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0, SMOLOTCHI_RELEASE_SOURCE: repo });
  return { root, fake, cli: (...args) => runCli(['release', ...args, '--root', root, '--systemctl', fake.path]) };
}

/** A fresh, empty sandbox root. */
const sandbox = (name: string): Sandbox => sandboxAt(path.join(work, name), name);

// Most cases start from 1.0.0 installed: that first install (a fresh venv, the mirror's clone) runs
// once per file and each of them gets a copy (cp -a). A venv records its own path (a clone refuses
// one built elsewhere), so the copy goes back to the path the template was built at: the tests of
// a file run one at a time, and each of these is done with it before the next one starts.
const INSTALLED = 'installed';
let template: string | undefined;

/** A sandbox root with 1.0.0 installed (current, proven good) and a fresh recording systemctl. */
async function installed(name: string): Promise<Sandbox> {
  const root = path.join(work, INSTALLED);
  if (template === undefined) {
    expect((await sandboxAt(root, 'template').cli('install', '1.0.0')).exitCode).toBe(0);
    template = path.join(work, `${INSTALLED}-template`);
    renameSync(root, template);
  }
  rmSync(root, { recursive: true, force: true });
  execFileSync('cp', ['-a', template, root]);
  return sandboxAt(root, name);
}

const currentOf = (root: string) => readlinkSync(path.join(root, 'opt/smolotchi/current'));
/** Every unit restarted, in the order asked: a call restarting several lists them in its order. */
const restarts = (fake: FakeSystemctl) => fake.log().filter((c) => c.includes('restart')).flatMap((c) => c.slice(c.indexOf('--') + 1));

describe('install, upgrade, rollback, prune on a sandbox root', () => {
  const sb = () => box;
  let box: ReturnType<typeof sandbox>;
  beforeAll(() => {
    box = sandbox('main');
  });

  it('installs a version: release tree, venv, stamp, units, restart order, current, history', async () => {
    const { root, fake, cli } = sb();
    const r = await cli('install', '1.0.0');
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.exitCode).toBe(0);
    expect(currentOf(root)).toBe('releases/1.0.0');
    const rel = path.join(root, 'opt/smolotchi/releases/1.0.0');
    expect(existsSync(path.join(rel, 'smolotchi/cli.py'))).toBe(true);
    expect(existsSync(path.join(rel, '.venv/bin/python'))).toBe(true);
    const stamp = JSON.parse(readFileSync(path.join(rel, '.smolotchi-release.json'), 'utf8'));
    expect(stamp).toMatchObject({ version: '1.0.0', kind: 'git', commit: tags['1.0.0'] });
    const unitDir = path.join(root, 'etc/systemd/system');
    expect(readFileSync(path.join(unitDir, 'smolotchi-web.service.d/05-venv-execstart.conf'), 'utf8')).toContain(
      'ExecStart=/opt/smolotchi/current/.venv/bin/python -P -m smolotchi.cli web',
    );
    const calls = fake.log().map((c) => c.join(' '));
    expect(calls.some((c) => c.includes('daemon-reload'))).toBe(true);
    const order = restarts(fake);
    expect(order.indexOf('smolotchi-core.service')).toBeLessThan(order.indexOf('smolotchi-web.service'));
    expect(order).toContain('smolotchi-prune.timer');
    expect(order).not.toContain('smolotchi-display.service');
    const h = (await cli('history', '--json')).json<HistoryJson>();
    expect(h.schemaVersion).toBe(1);
    expect(h.deploys[0]).toMatchObject({ kind: 'install', toVersion: '1.0.0', status: 'succeeded', commit: tags['1.0.0'] });
  });

  it('upgrades to 1.1.0: the new release is current, the old one stays on disk', async () => {
    const { root, cli } = sb();
    const r = await cli('install', '1.1.0');
    expect(r.exitCode).toBe(0);
    expect(currentOf(root)).toBe('releases/1.1.0');
    expect(r.stdout).toContain('installed 1.1.0 (was 1.0.0)');
    const list = (await cli('list', '--json')).json<{ releases: { version: string; current: boolean }[] }>();
    expect(list.releases.map((x) => x.version)).toEqual(['1.1.0', '1.0.0']);
  });

  it('installing the current version again is a no-op', async () => {
    const { cli } = sb();
    const before = (await cli('history', '--json')).json<HistoryJson>().deploys.length;
    const r = await cli('install', 'v1.1.0');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('already current');
    expect((await cli('history', '--json')).json<HistoryJson>().deploys.length).toBe(before);
  });

  it('a release whose health check fails is rolled back automatically (exit 5) and marked bad', async () => {
    const { root, cli } = sb();
    const r = await cli('install', '1.2.0');
    expect(r.exitCode).toBe(5);
    expect(r.stdout).toContain('rolled back to 1.1.0');
    expect(currentOf(root)).toBe('releases/1.1.0');
    const s = (await cli('status', '--json')).json<StatusJson>();
    expect(s).toMatchObject({ current: '1.1.0', lastGood: '1.1.0', bad: ['1.2.0'], degraded: false, drift: false });
    expect(s.lastDeploy?.status).toBe('rolled-back');
    expect(s.lastDeploy?.error).toContain('health-check');
    const h = (await cli('history', '--json')).json<HistoryJson>();
    expect(h.deploys[0]).toMatchObject({ kind: 'auto-rollback', fromVersion: '1.2.0', toVersion: '1.1.0', status: 'succeeded' });
    expect(h.deploys[1]).toMatchObject({ kind: 'install', toVersion: '1.2.0', status: 'rolled-back' });
  });

  it('a bad release is refused without --force, nothing changes', async () => {
    const { root, cli } = sb();
    const before = snapshot(root);
    const r = await cli('install', '1.2.0');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('marked bad');
    expect(r.stderr).toContain('--force');
    expect(changes(before, snapshot(root))).toBe('');
  });

  it('an unimportable release fails its build (exit 1) and is never switched to', async () => {
    const { root, fake, cli } = sb();
    const callsBefore = fake.log().length;
    const r = await cli('install', '1.3.0');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/smoke import|ImportError/);
    expect(currentOf(root)).toBe('releases/1.1.0');
    expect(existsSync(path.join(root, 'opt/smolotchi/releases/1.3.0'))).toBe(false);
    expect(fake.log().slice(callsBefore).filter((c) => c.includes('restart'))).toEqual([]);
    const h = (await cli('history', '--json')).json<HistoryJson>();
    expect(h.deploys[0]).toMatchObject({ kind: 'install', toVersion: '1.3.0', status: 'failed' });
  });

  it('rollback goes to the last good release, rollback --to to a named one', async () => {
    const { root, cli, fake } = sb();
    const unitFile = path.join(root, 'etc/systemd/system/smolotchi-web.service');
    const unitBefore = statSync(unitFile);
    const reloads = () => fake.log().filter((c) => c.includes('daemon-reload')).length;
    const [reloadsBefore, restartsBefore] = [reloads(), restarts(fake).length];
    expect((await cli('rollback')).exitCode).toBe(0);
    expect(currentOf(root)).toBe('releases/1.0.0');
    // 1.0.0 renders byte-identical units: nothing rewritten, no daemon-reload, yet the services restart.
    expect(reloads()).toBe(reloadsBefore);
    expect(statSync(unitFile)).toMatchObject({ ino: unitBefore.ino, mtimeMs: unitBefore.mtimeMs });
    expect(restarts(fake).length).toBeGreaterThan(restartsBefore);
    expect((await cli('rollback', '--to', '1.1.0')).exitCode).toBe(0);
    expect(currentOf(root)).toBe('releases/1.1.0');
    const missing = await cli('rollback', '--to', '9.9.9');
    expect(missing.exitCode).toBe(3);
    expect(missing.stderr).toContain('not installed');
  });

  it('prune keeps N but never current, last good or the rollback target', async () => {
    const { root, cli } = sb();
    // latest = 1.4.0 (the prerelease 2.0.0-rc.1 is skipped); its own prune (keep 3) drops the bad 1.2.0 first.
    const latest = (await cli('install', 'latest', '--json')).json<{ version: string; pruned: string[] }>();
    expect(latest).toMatchObject({ version: '1.4.0', pruned: ['1.2.0'] });
    expect(currentOf(root)).toBe('releases/1.4.0');
    const dry = (await cli('prune', '--keep', '1', '--dry-run', '--json')).json<{ removed: string[]; kept: string[] }>();
    expect(dry.kept.sort()).toEqual(['1.1.0', '1.4.0']);
    expect(existsSync(path.join(root, 'opt/smolotchi/releases/1.0.0'))).toBe(true);
    const r = (await cli('prune', '--keep', '1', '--json')).json<{ removed: string[] }>();
    expect(r.removed).toEqual(['1.0.0']);
    expect(readdirSync(path.join(root, 'opt/smolotchi/releases')).sort()).toEqual(['1.1.0', '1.4.0']);
    expect((await cli('rollback')).exitCode).toBe(0);
    expect(currentOf(root)).toBe('releases/1.1.0');
  });

  it('--dry-run prints the plan and changes nothing', async () => {
    const { root, cli } = sb();
    const before = snapshot(root);
    const refused = await cli('install', '1.0.0', '--dry-run');
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain('older than the current 1.1.0');
    const r = await cli('install', '1.0.0', '--dry-run', '--allow-downgrade');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('switch current: 1.1.0 -> 1.0.0');
    expect((await cli('rollback', '--dry-run')).exitCode).toBe(0);
    expect(changes(before, snapshot(root))).toBe('');
  });
});

describe('bad input is refused with exit 2 before anything changes', () => {
  const hostile = ['', '1.0', '1', '../1.0.0', '1.0.0/../../etc', '-rf', '--source=x', 'v1.0.0;rm -rf /', '$(touch x)', '1.0.0\n', 'a'.repeat(70), `1.0.0-${'a'.repeat(70)}`, 'latest/../x', '01.0.0', '1.0.0 '];
  let box: Sandbox;
  let before: string;
  beforeAll(async () => {
    box = await installed('hostile');
    before = snapshot(box.root);
  });

  it.each(hostile)('install %j', async (version) => {
    const r = await box.cli('install', version);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
    expect(changes(before, snapshot(box.root))).toBe('');
  });

  it.each(hostile)('rollback --to %j', async (version) => {
    const r = await box.cli('rollback', '--to', version);
    expect(r.exitCode).toBe(2);
    expect(changes(before, snapshot(box.root))).toBe('');
  });

  it('with --json a refusal is also a JSON error object on stdout', async () => {
    const r = await box.cli('install', '1.0', '--json');
    expect(r.exitCode).toBe(2);
    expect(r.json()).toEqual({ schemaVersion: 1, command: 'install', error: { message: expect.stringContaining('not a version'), exitCode: 2, hint: null } });
  });

  it('an unknown version is exit 3 and changes nothing', async () => {
    const r = await box.cli('install', '7.7.7');
    expect(r.exitCode).toBe(3);
    expect(currentOf(box.root)).toBe('releases/1.0.0');
  });

  it('a hostile source is refused with exit 2', async () => {
    const r = await box.cli('install', '1.1.0', '--source', '--upload-pack=touch pwned');
    expect(r.exitCode).toBe(2);
    expect(existsSync('pwned')).toBe(false);
  });

  it('an unknown or malformed setting names the key (exit 2)', async () => {
    writeEnvFile(box.root, { SMOLOTCHI_RELEASE_KEEP: 'many' });
    let r = await box.cli('status');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('SMOLOTCHI_RELEASE_KEEP');
    writeEnvFile(box.root, { SMOLOTCHI_RELEASE_KEPE: 3 });
    r = await box.cli('status');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('unknown setting SMOLOTCHI_RELEASE_KEPE');
    writeEnvFile(box.root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0, SMOLOTCHI_RELEASE_SOURCE: repo });
  });
});

describe('unit failures reported by systemd', () => {
  it('the new release AND the way back both fail: exit 6, status degraded until a good deploy', async () => {
    const { fake, cli } = await installed('degraded');
    fake.setState('smolotchi-web.service', { ActiveState: 'failed', SubState: 'failed', Result: 'exit-code' });
    const r = await cli('install', '1.1.0');
    expect(r.exitCode).toBe(6);
    expect(r.stdout).toContain('DEGRADED');
    const s = await cli('status', '--json');
    expect(s.exitCode).toBe(6);
    expect(s.json<StatusJson>()).toMatchObject({ degraded: true, current: '1.0.0', bad: ['1.0.0', '1.1.0'].filter((v) => v === '1.1.0') });
    expect(s.json<StatusJson>().degradedReason).toContain('smolotchi-web.service');
    fake.setState('smolotchi-web.service', { ActiveState: 'active', SubState: 'running', Result: 'success' });
    expect((await cli('install', '1.4.0')).exitCode).toBe(0);
    expect((await cli('status', '--json')).json<StatusJson>().degraded).toBe(false);
  });

  it('a unit that restarts during the settle window fails the gate', async () => {
    const { root, fake, cli } = await installed('flapping');
    writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 1, SMOLOTCHI_RELEASE_SOURCE: repo });
    // A restart counter that climbs on every query: systemd restarting a crashing core.
    fake.setState('smolotchi-core.service', { NRestartsIncrement: true });
    const r = await cli('install', '1.1.0');
    expect([5, 6]).toContain(r.exitCode);
    expect(r.stdout + r.stderr).toContain('smolotchi-core.service');
  });

  it('a health check script in the previous release failing too leaves the device degraded', async () => {
    const { root, cli } = await installed('both-scripts');
    const check = path.join(root, 'opt/smolotchi/releases/1.0.0/packaging/health-check');
    mkdirSync(path.dirname(check), { recursive: true });
    writeFileSync(check, '#!/bin/sh\necho "old release broken too" >&2\nexit 1\n');
    chmodSync(check, 0o755);
    const r = await cli('install', '1.2.0');
    expect(r.exitCode).toBe(6);
    expect(currentOf(root)).toBe('releases/1.0.0');
  });

  it('a first install that fails its gate removes what it installed (exit 5)', async () => {
    const { root, cli } = sandbox('first-bad');
    const r = await cli('install', '1.2.0');
    expect(r.exitCode).toBe(5);
    expect(existsSync(path.join(root, 'opt/smolotchi/current'))).toBe(false);
    expect(readdirSync(path.join(root, 'etc/systemd/system')).filter((f) => f.startsWith('smolotchi-'))).toEqual([]);
  });
});

describe('source history', () => {
  it('a tag that moved since its first install is refused (exit 4) unless --force', async () => {
    const { root, cli } = sandbox('moved-tag');
    const app = await createSampleRepo(path.join(work, 'moved-app'), [{ version: '1.0.0' }, { version: '1.1.0' }]);
    const c = (...args: string[]) => cli(...args, '--source', app.repo);
    expect((await c('install', '1.0.0')).exitCode).toBe(0);
    expect((await c('install', '1.1.0')).exitCode).toBe(0);
    expect((await cli('rollback', '--to', '1.0.0')).exitCode).toBe(0);
    rmSync(path.join(root, 'opt/smolotchi/releases/1.1.0'), { recursive: true });
    // Someone re-points v1.1.0 at another commit upstream.
    await execa('git', ['tag', '-f', '-a', '-m', 'moved', 'v1.1.0', app.tags['1.0.0']!], { cwd: app.repo });
    const refused = await c('install', '1.1.0');
    expect(refused.exitCode).toBe(4);
    expect(refused.stderr).toContain('now points at');
    expect(currentOf(root)).toBe('releases/1.0.0');
    expect(existsSync(path.join(root, 'opt/smolotchi/releases/1.1.0'))).toBe(false);
    const forced = await c('install', '1.1.0', '--force');
    expect(forced.exitCode).toBe(0);
  });

  it('install below the current version needs --allow-downgrade; rollback is the normal way back', async () => {
    const { root, cli } = sandbox('downgrade');
    expect((await cli('install', '1.1.0')).exitCode).toBe(0);
    const r = await cli('install', '1.0.0');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('rollback');
    expect((await cli('install', '1.0.0', '--allow-downgrade')).exitCode).toBe(0);
    expect(currentOf(root)).toBe('releases/1.0.0');
  });
});

describe('repair before the next command', () => {
  it('prune after a crash in the gate goes back to the old release and restarts its units', async () => {
    const { root, fake, cli } = await installed('prune-after-crash');
    const killed = await runCli(['release', 'install', '1.1.0', '--root', root, '--systemctl', fake.path], { env: { SMOLOTCHI_TEST_KILL_AT: 'health-gate' } });
    expect(killed.exitCode).not.toBe(0);
    expect(currentOf(root)).toBe('releases/1.1.0'); // switched, never proven
    const before = fake.log().length;
    const r = await cli('prune');
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain('never proven healthy');
    expect(currentOf(root)).toBe('releases/1.0.0');
    // As a deploy restarts them: core in a call of its own, then the rest in one.
    const restarts = fake.log().slice(before).filter((c) => c.includes('restart')).map((c) => c.slice(c.indexOf('--') + 1));
    expect(restarts).toEqual([['smolotchi-core.service'], expect.arrayContaining(['smolotchi-web.service', 'smolotchi-ai.service'])]);
  });
});
