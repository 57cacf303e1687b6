import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleApp } from '../../scripts/sample-app.js';
import { commitFiles, gitRepo, tag } from '../support/git-repo.js';
import { attackingReleaseFiles } from '../support/release-code-attack.js';
import {
  assertBuilt,
  currentVersion,
  e2eSettings,
  explain,
  mainPidUid,
  sandboxAvailable,
  servedOnceUp,
  servedVersion,
  smolotchi,
  startSandbox,
  unitInfo,
  verifyInstalledUnits,
  writeEnvFile,
  type Sandbox,
} from '../support/sandbox.js';

// Issue 8, points 2-4, against a real systemd, as the real smolotchi user: a release's units get
// the tool's privileges whatever they ask, release code never runs as root at install, and the
// units never import what the service user plants in their working directory.
const available = sandboxAvailable();

const WEB = 'packaging/systemd/smolotchi-web.service';
const VICTIMS = ['/etc/smolotchi/victim', '/root/victim'];
const WITNESS = '/var/tmp/witness';

type Files = Record<string, string | { content: string; mode: number }>;
const HOSTILE: Array<[string, string, (web: string) => string, Files?]> = [
  ['1.0.1', 'User=root refused', (t) => t.replace('User=smolotchi', 'User=root')],
  ['1.0.2', 'the + prefix', (t) => t.replace('Type=exec', 'Type=exec\nExecStartPre=+/bin/sh -c "id > /etc/pwned"')],
  ['1.0.3', 'Alias=getty@tty9.service refused', (t) => t.replace('WantedBy=multi-user.target', 'WantedBy=multi-user.target\nAlias=getty@tty9.service')],
  ['1.0.4', 'names must match smolotchi-*', (t) => t, { 'packaging/systemd/backdoor.service': '[Service]\nExecStart=/bin/sh -c "id > /etc/pwned"\n' }],
  ['1.0.5', 'smolotchi-web.service may hold no capabilities', (t) => t.replace('Type=exec', 'Type=exec\nAmbientCapabilities=CAP_SYS_ADMIN\nCapabilityBoundingSet=CAP_SYS_ADMIN')],
];

describe.skipIf(!available)('e2e: trust boundaries of units and release code', () => {
  let sb: Sandbox;
  let uid: number;

  beforeAll(async () => {
    assertBuilt();
    sb = await startSandbox();
    const repoDir = path.join(sb.workDir, 'repo');
    const repo = await gitRepo(repoDir);
    const release = async (version: string, edit: (web: string) => string = (t) => t, extra: Files = {}) => {
      for (const entry of await fs.readdir(repoDir)) if (entry !== '.git') await fs.rm(path.join(repoDir, entry), { recursive: true, force: true });
      await writeSampleApp(repoDir, { version, extraUnits: true });
      const web = await fs.readFile(path.join(repoDir, WEB), 'utf8');
      await commitFiles(repo, { [WEB]: edit(web), ...extra }, `smolotchi ${version}`);
      await tag(repo, `v${version}`, { annotated: true });
    };
    await release('1.0.0');
    for (const [version, , edit, extra] of HOSTILE) await release(version, edit, extra);
    const cli = await fs.readFile(path.join(repoDir, 'smolotchi/cli.py'), 'utf8');
    await release('1.1.0', (t) => t, attackingReleaseFiles(cli, WITNESS, VICTIMS));
    await release('1.2.0');
    await writeEnvFile(sb, e2eSettings(repoDir));
    uid = Number((await sb.exec(['id', '-u', 'smolotchi'])).stdout.trim());
    for (const victim of VICTIMS) await sb.exec(['sh', '-c', `echo root-only > ${victim} && chmod 0644 ${victim}`]);
    await sb.exec(['sh', '-c', `mkdir -m 1777 -p ${WITNESS}`]);
    const r = await smolotchi(sb, ['release', 'install', '1.0.0']);
    if (r.exitCode !== 0) throw new Error(`installing 1.0.0 failed: ${explain(r)}`);
  });
  afterAll(async () => {
    await sb?.stop();
  });

  it('runs every service as smolotchi with the policy drop-in read last', async () => {
    for (const unit of ['smolotchi-core.service', 'smolotchi-web.service', 'smolotchi-ai.service']) {
      expect(await mainPidUid(sb, unit), unit).toBe(uid);
      const show = await sb.exec(['systemctl', 'show', '-p', 'User', '-p', 'NoNewPrivileges', '-p', 'DropInPaths', '-p', 'CapabilityBoundingSet', unit]);
      expect(show.stdout).toContain('User=smolotchi');
      expect(show.stdout).toContain('NoNewPrivileges=yes');
      expect(show.stdout).toMatch(/^CapabilityBoundingSet=$/m);
      const dropins = /^DropInPaths=(.*)$/m.exec(show.stdout)![1]!.split(' ');
      expect(path.basename(dropins.at(-1)!), unit).toBe('zz-smolotchi-policy.conf');
    }
  });

  it("keeps the tool's history folder out of every unit's reach: it is a mount there, so it cannot be read or renamed away", async () => {
    const pid = (await unitInfo(sb, 'smolotchi-web.service')).MainPID;
    const mounts = await sb.exec(['cat', `/proc/${pid}/mountinfo`]);
    expect(mounts.stdout).toMatch(/ \/var\/lib\/smolotchi\/release /);
    const asApp = ['nsenter', '-t', String(pid), '-m', 'setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
    expect((await sb.exec([...asApp, 'ls', '/var/lib/smolotchi/release'])).exitCode).not.toBe(0);
    expect((await sb.exec([...asApp, 'mv', '/var/lib/smolotchi/release', '/var/lib/smolotchi/stolen'])).exitCode).not.toBe(0);
    expect(existsSync(sb.fsPath('/var/lib/smolotchi/release/releases.db'))).toBe(true);
  });

  it.each(HOSTILE)('refuses hostile units of %s with exit 4, and nothing changes (%s)', async (version, message) => {
    const web = await unitInfo(sb, 'smolotchi-web.service');
    const units = await fs.readdir(sb.fsPath('/etc/systemd/system'));
    const r = await smolotchi(sb, ['release', 'install', version]);
    expect(r.exitCode, explain(r)).toBe(4);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toMatch(/packaging\/systemd\/\S+(:\d+)?/);
    expect(await currentVersion(sb)).toBe('1.0.0');
    expect(existsSync(sb.fsPath(`/opt/smolotchi/releases/${version}`))).toBe(false);
    expect(await fs.readdir(sb.fsPath('/etc/systemd/system'))).toEqual(units);
    expect((await unitInfo(sb, 'smolotchi-web.service')).MainPID).toBe(web.MainPID);
    expect(existsSync(sb.fsPath('/etc/pwned'))).toBe(false);
  });

  it('runs the build backend, smoke import and health check as smolotchi: root files stay unwritten', async () => {
    const r = await smolotchi(sb, ['release', 'install', '1.1.0']);
    expect(r.exitCode, explain(r)).toBe(0);
    for (const step of ['build-backend', 'smoke-import', 'health-check']) {
      expect(await fs.readFile(sb.fsPath(`${WITNESS}/${step}-uid`), 'utf8'), step).toBe(String(uid));
    }
    for (const victim of VICTIMS) expect(await fs.readFile(sb.fsPath(victim), 'utf8'), victim).toBe('root-only\n');
    // What smolotchi built is root's before the stamp.
    const owned = await sb.exec(['find', '/opt/smolotchi/releases/1.1.0', '-user', 'smolotchi']);
    expect(owned.stdout.trim()).toBe('');
  });

  it('a smolotchi package planted by the service user in /var/lib/smolotchi is not imported, and verify reports it', async () => {
    const plant = `mkdir -p /var/lib/smolotchi/smolotchi && printf 'open("/var/lib/smolotchi/shadow-ran", "w").close()\\n' > /var/lib/smolotchi/smolotchi/__init__.py`;
    expect((await sb.exec(['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'sh', '-c', plant])).exitCode).toBe(0);
    expect((await sb.exec(['systemctl', 'restart', 'smolotchi-web.service', 'smolotchi-ai.service'])).exitCode).toBe(0);
    expect(await servedOnceUp(sb, '1.1.0')).toBe('1.1.0');
    expect(existsSync(sb.fsPath('/var/lib/smolotchi/shadow-ran'))).toBe(false);
    const r = await smolotchi(sb, ['release', 'verify']);
    expect(r.exitCode, explain(r)).toBe(4);
    expect(r.stdout + r.stderr).toContain("/var/lib/smolotchi/smolotchi shadows the release's module smolotchi");
    await fs.rm(sb.fsPath('/var/lib/smolotchi/smolotchi'), { recursive: true });
  });

  it('an alias link an older install left is removed when the [Install] section changes', async () => {
    // What an older tool let a release do: an Alias= in the installed unit, enabled.
    const unit = sb.fsPath('/etc/systemd/system/smolotchi-web.service');
    await fs.appendFile(unit, 'Alias=totally-legit.service\n');
    expect((await sb.exec(['systemctl', 'daemon-reload'])).exitCode).toBe(0);
    expect((await sb.exec(['systemctl', 'reenable', 'smolotchi-web.service'])).exitCode).toBe(0);
    const link = sb.fsPath('/etc/systemd/system/totally-legit.service');
    expect((await fs.lstat(link)).isSymbolicLink()).toBe(true);
    const r = await smolotchi(sb, ['release', 'install', '1.2.0']);
    expect(r.exitCode, explain(r)).toBe(0);
    await expect(fs.lstat(link)).rejects.toThrow();
    expect(await servedVersion(sb)).toBe('1.2.0');
    const { result } = await verifyInstalledUnits(sb);
    expect(result.exitCode, explain(result)).toBe(0);
  });
});
