import { existsSync, mkdtempSync, promises as fs, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleApp } from '../../scripts/sample-app.js';
import { runCli, writeEnvFile } from '../support/cli.js';
import { makeFakeSystemctl } from '../support/fake-systemctl.js';
import { commitFiles, gitRepo, tag } from '../support/git-repo.js';

// The unit policy through the built CLI: hostile release units are refused before anything
// changes, an [Install] section that changed is disabled before it is enabled again, and status
// shows what a release loosened.

const WEB = 'packaging/systemd/smolotchi-web.service';
let work: string;
let repo: string;

/** Each version: the sample app shipping its own units, with `edit` applied to them. */
const VERSIONS: Array<[string, (text: string) => string, Record<string, string>?]> = [
  ['1.0.0', (t) => t],
  ['1.1.0', (t) => t.replace('User=smolotchi', 'User=root')],
  ['1.2.0', (t) => t.replace('Type=exec', 'Type=exec\nExecStartPre=+/bin/sh -c "touch /etc/pwned"')],
  ['1.3.0', (t) => t.replace('WantedBy=multi-user.target', 'WantedBy=multi-user.target\nAlias=totally-legit.service')],
  ['1.4.0', (t) => t],
  ['1.5.0', (t) => t.replace('WantedBy=multi-user.target', 'WantedBy=default.target'), { 'packaging/systemd/dropins/smolotchi-web.service.d/30-net.conf': '[Service]\nPrivateNetwork=false\nProtectHome=false\n' }],
  ['1.6.0', (t) => t, { 'packaging/systemd/sshd-backdoor.service': '[Service]\nExecStart=/usr/sbin/sshd -D\n' }],
  ['1.7.0', (t) => t, { 'packaging/systemd/dropins/smolotchi-core.service.d/30-caps.conf': '[Service]\nAmbientCapabilities=CAP_SYS_ADMIN\n' }],
];

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-unit-policy-'));
  repo = path.join(work, 'app');
  const r = await gitRepo(repo);
  for (const [version, edit, extra] of VERSIONS) {
    for (const entry of await fs.readdir(repo)) if (entry !== '.git') await fs.rm(path.join(repo, entry), { recursive: true, force: true });
    await writeSampleApp(repo, { version, extraUnits: true });
    const web = await fs.readFile(path.join(repo, WEB), 'utf8');
    await commitFiles(r, { [WEB]: edit(web), ...extra }, `smolotchi ${version}`);
    await tag(r, `v${version}`, { annotated: true });
  }
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Names, sizes and mtimes of everything that must not change (the lock's /run excepted). */
function snapshot(root: string): string {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const rel = path.relative(root, p);
      // Work folders (empty after every command) and the git mirror's cache are not state.
      if (rel === 'run' || /\.db-(wal|shm)$/.test(rel) || rel.startsWith('var/cache') || /^opt\/smolotchi\/\.(trash|staging)$/.test(rel)) continue;
      const s = statSync(p, { throwIfNoEntry: false });
      if (!s) continue;
      out.push(s.isDirectory() ? `${rel}/` : `${rel} ${s.size} ${s.mtimeMs}`);
      if (s.isDirectory() && !p.endsWith('.venv')) walk(p);
    }
  };
  walk(root);
  return out.join('\n');
}

describe('unit policy on a sandbox root', () => {
  const root = () => path.join(work, 'root');
  const fake = () => makeFakeSystemctl(path.join(work));
  let systemctl: ReturnType<typeof makeFakeSystemctl>;
  const cli = (...args: string[]) => runCli(['release', ...args, '--root', root(), '--systemctl', systemctl.path]);

  beforeAll(async () => {
    systemctl = fake();
    writeEnvFile(root(), { SMOLOTCHI_RELEASE_SOURCE: repo, SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0 });
    const r = await cli('install', '1.0.0');
    expect(r.exitCode, r.stderr).toBe(0);
  });

  it.each([
    ['1.1.0', `${WEB}:10: User=root refused: every unit runs as smolotchi`],
    ['1.2.0', `${WEB}:10: ExecStartPre=+/bin/sh -c "touch /etc/pwned" refused: the + prefix`],
    ['1.3.0', `${WEB}:26: Alias=totally-legit.service refused`],
    ['1.6.0', 'release unit template packaging/systemd/sshd-backdoor.service refused: names must match smolotchi-*'],
    ['1.7.0', 'smolotchi-core.service.d/30-caps.conf:2: AmbientCapabilities=CAP_SYS_ADMIN refused: smolotchi-core.service may hold CAP_NET_RAW'],
  ])('refuses %s with exit 4, naming the line, before anything changes', async (version, message) => {
    // The history is the one thing a refused install may add to: the attempt, recorded as failed.
    const tree = () => snapshot(root()).split('\n').filter((l) => !l.startsWith('var/lib/smolotchi/release/releases.db ')).join('\n');
    const deploys = async () => JSON.parse((await cli('history', '--json')).stdout).deploys as Array<{ id: number; toVersion: string; status: string }>;
    const before = tree();
    const earlier = await deploys();
    const calls = systemctl.log().length;
    const r = await cli('install', version);
    expect(r.exitCode, r.stderr).toBe(4);
    expect(r.stderr).toContain(message);
    expect(tree()).toBe(before);
    const later = await deploys();
    expect(later.slice(-earlier.length)).toEqual(earlier);
    for (const d of later.slice(0, later.length - earlier.length)) expect([d.toVersion, d.status]).toEqual([version, 'failed']);
    expect(existsSync(path.join(root(), 'opt/smolotchi/releases', version))).toBe(false);
    expect(readlinkSync(path.join(root(), 'opt/smolotchi/current'))).toBe('releases/1.0.0');
    expect(systemctl.log().slice(calls)).toEqual([]);
  });

  it('disables a unit whose [Install] section changed before enabling it again, and status shows what it loosened', async () => {
    expect((await cli('install', '1.4.0')).exitCode).toBe(0);
    const calls = systemctl.log().length;
    const r = await cli('install', '1.5.0');
    expect(r.exitCode, r.stderr).toBe(0);
    const log = systemctl.log().slice(calls).map((c) => c.filter((a) => !a.startsWith('-')).join(' '));
    const disable = log.findIndex((c) => c.startsWith('disable') && c.includes('smolotchi-web.service'));
    const enable = log.findIndex((c) => c.startsWith('enable') && c.includes('smolotchi-web.service'));
    expect(disable, log.join('\n')).toBeGreaterThanOrEqual(0);
    expect(disable).toBeLessThan(log.indexOf('daemon-reload'));
    expect(enable).toBeGreaterThan(log.indexOf('daemon-reload'));
    // Units whose [Install] did not change are not disabled.
    expect(log.filter((c) => c.startsWith('disable')).join(' ')).not.toContain('smolotchi-core.service');
    const status = await cli('status', '--json');
    expect(status.json<{ loosened: Record<string, string[]> }>().loosened['smolotchi-web.service']).toEqual([
      'PrivateNetwork=false (packaging/systemd/dropins/smolotchi-web.service.d/30-net.conf:2)',
      'ProtectHome=false (packaging/systemd/dropins/smolotchi-web.service.d/30-net.conf:3)',
    ]);
    expect((await cli('status')).stdout).toContain('smolotchi-web.service loosens: PrivateNetwork=false');
    const policy = readFileSync(path.join(root(), 'etc/systemd/system/smolotchi-web.service.d/zz-smolotchi-policy.conf'), 'utf8');
    expect(policy).toMatch(/^User=smolotchi$/m);
  });

  it('a smolotchi package planted in the working directory is not imported by the units, and verify reports it', async () => {
    const state = path.join(root(), 'var/lib/smolotchi');
    await fs.mkdir(path.join(state, 'smolotchi'), { recursive: true });
    await fs.writeFile(path.join(state, 'smolotchi', '__init__.py'), 'raise SystemExit("planted code ran")\n');
    // The units' interpreter flags, from the installed drop-in: run the way systemd runs them.
    const dropin = readFileSync(path.join(root(), 'etc/systemd/system/smolotchi-web.service.d/05-venv-execstart.conf'), 'utf8');
    const flags = /^ExecStart=\S+\/python((?: -[A-Z])*) -m /m.exec(dropin)![1]!.trim().split(' ').filter(Boolean);
    expect(flags).toContain('-P');
    const current = path.join(root(), 'opt/smolotchi/current');
    const probe = (extra: string[]) =>
      execa(path.join(current, '.venv/bin/python'), [...extra, '-c', 'import smolotchi; print(smolotchi.__file__)'], {
        cwd: state,
        env: { PYTHONPATH: current },
        extendEnv: false,
        reject: false,
      });
    // Without -P the attack works (the working directory comes first); with the units' flags it does not.
    expect((await probe([])).stderr).toContain('planted code ran');
    expect((await probe(flags)).stdout).toBe(path.join(current, 'smolotchi/__init__.py'));
    const r = await cli('verify');
    expect(r.exitCode).toBe(4);
    expect(r.stdout + r.stderr).toContain("/var/lib/smolotchi/smolotchi shadows the release's module smolotchi");
    await fs.rm(path.join(state, 'smolotchi'), { recursive: true });
    expect((await cli('verify')).exitCode).toBe(0);
  });

  it('a current release whose units today\'s policy refuses does not block a rollback to one that passes', async () => {
    // As if installed by an older tool: the current release's own unit asks for root.
    const current = readlinkSync(path.join(root(), 'opt/smolotchi/current'));
    const unit = path.join(root(), 'opt/smolotchi', current, WEB);
    await fs.chmod(unit, 0o644);
    await fs.writeFile(unit, (await fs.readFile(unit, 'utf8')).replace('User=smolotchi', 'User=root'));
    const status = await cli('status', '--json');
    expect(status.exitCode).toBe(0);
    expect(status.json<{ drift: boolean; driftFiles: string[] }>().driftFiles.join(' ')).toContain('User=root refused');
    const r = await cli('rollback', '--to', '1.0.0');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain('refused by the unit policy');
    expect(readlinkSync(path.join(root(), 'opt/smolotchi/current'))).toBe('releases/1.0.0');
    expect(readFileSync(path.join(root(), 'etc/systemd/system/smolotchi-web.service'), 'utf8')).toMatch(/^User=smolotchi$/m);
  });
});
