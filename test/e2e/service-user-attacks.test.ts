import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootDevice,
  currentVersion,
  explain,
  smolotchi,
  smolotchiJson,
  sandboxAvailable,
  type ExecResult,
  type Sandbox,
} from '../support/sandbox.js';

// The service user (the real `smolotchi` user, inside a real systemd whose units ran and applied
// StateDirectory=/RuntimeDirectory=) attacks root through everything it can write: symlink plants
// in /run/smolotchi, /run/smolotchi/locks and /var/lib/smolotchi, a forged history at the old
// place, a planted lock. Root's tool must neither write through its links nor believe its files:
// the victim (a root-only file), the history and `current` stay as they were.
const available = sandboxAvailable();

const VICTIM = '/etc/smolotchi/victim';
const VICTIM_TEXT = 'root-only secret';

interface Status {
  current: string | null;
  lastGood: string | null;
  bad: string[];
}
interface Deploy {
  id: number;
  kind: string;
  status: string;
  error: string | null;
}

describe.skipIf(!available)('e2e: the service user cannot make root act for it', () => {
  let sb: Sandbox;
  /** A shell command run as the real smolotchi user inside the sandbox. */
  const asService = (script: string): Promise<ExecResult> => sb.exec(['runuser', '-u', 'smolotchi', '--', 'sh', '-c', script]);
  const asRoot = (script: string): Promise<ExecResult> => sb.exec(['sh', '-c', script]);
  const victim = async () => (await asRoot(`cat ${VICTIM}; stat -c '%U %a' ${VICTIM}`)).stdout;
  const deploys = async () => (await smolotchiJson<{ deploys: Deploy[] }>(sb, ['release', 'history', '--limit', '1000'])).json.deploys;
  const status = async () => (await smolotchiJson<Status>(sb, ['release', 'status'])).json;
  let victimBefore: string;

  beforeAll(async () => {
    ({ sb } = await bootDevice([{ version: '1.0.0' }, { version: '1.1.0' }], { install: '1.0.0' }));
    const r = await smolotchi(sb, ['release', 'install', '1.1.0']);
    if (r.exitCode !== 0) throw new Error(explain(r));
    await asRoot(`printf '${VICTIM_TEXT}' > ${VICTIM} && chmod 0600 ${VICTIM}`);
    victimBefore = await victim();
  });
  afterAll(async () => {
    await sb?.stop();
  });

  /** The history rows that existed before: unchanged by whatever the attack did. */
  async function expectUnchanged(before: Deploy[], current = '1.1.0'): Promise<void> {
    expect(await victim()).toBe(victimBefore);
    expect(await currentVersion(sb)).toBe(current);
    const after = await deploys();
    for (const d of before) expect(after.find((a) => a.id === d.id), `deploy #${d.id}`).toEqual(d);
  }

  it("the tool's folders stay root's after the units ran: StateDirectory= never reached into release/", async () => {
    // The units have started (and with them StateDirectory=/RuntimeDirectory=); start one again for good measure.
    expect((await sb.exec(['systemctl', 'restart', 'smolotchi-ai.service'])).exitCode).toBe(0);
    const owners = await asRoot('stat -c "%n %U:%G %a" /var/lib/smolotchi /var/lib/smolotchi/release /var/lib/smolotchi/release/releases.db /run/smolotchi-release /run/smolotchi');
    expect(owners.stdout.split('\n')).toEqual([
      '/var/lib/smolotchi smolotchi:smolotchi 755',
      '/var/lib/smolotchi/release root:root 700',
      '/var/lib/smolotchi/release/releases.db root:root 640',
      '/run/smolotchi-release root:root 700',
      '/run/smolotchi smolotchi:smolotchi 755',
    ]);
    // The service user can neither read nor plant anything in them.
    for (const dir of ['/var/lib/smolotchi/release', '/run/smolotchi-release']) {
      const r = await asService(`ls ${dir} || touch ${dir}/planted`);
      expect(r.exitCode, dir).not.toBe(0);
      expect(r.stderr).toMatch(/Permission denied/);
    }
  });

  it('why the state folder is made the service user\'s first: were it root\'s, a unit start would chown release/ too, and the tool would refuse it', async () => {
    const stat = () => asRoot('stat -c "%U" /var/lib/smolotchi/release /var/lib/smolotchi/release/releases.db');
    // The tool re-owns the top folder before anything else: a unit start leaves release/ alone.
    await asRoot('chown root:root /var/lib/smolotchi');
    expect((await smolotchi(sb, ['release', 'recover'])).exitCode).toBe(0);
    expect((await sb.exec(['systemctl', 'restart', 'smolotchi-ai.service'])).exitCode).toBe(0);
    expect((await stat()).stdout.split('\n')).toEqual(['root', 'root']);
    // Without it, systemd's StateDirectory= descends (path_chown_recursive) and the service user
    // owns the history: the tool then refuses to trust it (exit 4) instead of reading it.
    await asRoot('chown root:root /var/lib/smolotchi');
    expect((await sb.exec(['systemctl', 'restart', 'smolotchi-ai.service'])).exitCode).toBe(0);
    expect((await stat()).stdout.split('\n')).toEqual(['smolotchi', 'smolotchi']);
    const refused = await smolotchi(sb, ['release', 'status']);
    expect(refused.exitCode, explain(refused)).toBe(4);
    expect(refused.stderr).toMatch(/history folder \/var\/lib\/smolotchi\/release is owned by uid \d+, not root/);
    await asRoot('chown -R root:root /var/lib/smolotchi/release');
    expect((await smolotchi(sb, ['release', 'status'])).exitCode).toBe(0);
  });

  it('symlinks planted in /run/smolotchi, /run/smolotchi/locks and /var/lib/smolotchi are never written through', async () => {
    const before = await deploys();
    const plant = [
      '/run/smolotchi/locks/release.lock.json',
      '/run/smolotchi/locks/release.lock.takeover',
      '/run/smolotchi/locks/release.lock.stale',
      '/run/smolotchi/release.lock',
      '/var/lib/smolotchi/releases.db',
      '/var/lib/smolotchi/releases.db-wal',
      '/var/lib/smolotchi/releases.db-shm',
      '/var/lib/smolotchi/legacy-releases.db',
    ];
    const r = await asService(plant.map((p) => `ln -sfn ${VICTIM} ${p}`).join(' && '));
    expect(r.exitCode, explain(r)).toBe(0);
    for (const args of [['release', 'recover'], ['release', 'prune'], ['release', 'install', '1.1.0']]) {
      const run = await smolotchi(sb, args);
      expect(run.exitCode, `${args.join(' ')}: ${explain(run)}`).toBe(0);
    }
    await expectUnchanged(before);
    await asRoot(`rm -f ${plant.join(' ')}`);
  });

  it('the history folder renamed away and replaced by a link: refused (exit 4), nothing written through it', async () => {
    const before = await deploys();
    const r = await asService(`mv /var/lib/smolotchi/release /var/lib/smolotchi/stolen && mkdir /var/lib/smolotchi/mine && ln -s ${VICTIM} /var/lib/smolotchi/mine/releases.db-wal && ln -s /var/lib/smolotchi/mine /var/lib/smolotchi/release`);
    expect(r.exitCode, explain(r)).toBe(0);
    for (const args of [['release', 'recover'], ['release', 'rollback']]) {
      const run = await smolotchi(sb, args);
      expect(run.exitCode, `${args.join(' ')}: ${explain(run)}`).toBe(4);
      expect(run.stderr).toMatch(/history folder \/var\/lib\/smolotchi\/release is a symlink or not a folder/);
    }
    expect(await victim()).toBe(victimBefore);
    expect(await currentVersion(sb)).toBe('1.1.0');
    await asRoot('rm /var/lib/smolotchi/release && mv /var/lib/smolotchi/stolen /var/lib/smolotchi/release && rm -rf /var/lib/smolotchi/mine');
    await expectUnchanged(before);
  });

  it('a lock planted by the service user, naming its own live process, blocks nothing', async () => {
    const before = await deploys();
    const lock = (file: string) =>
      `printf '{"pid":%s,"startTime":null,"bootId":"%s","host":"%s","purpose":"install 9.9.9","since":"2026-01-01T00:00:00Z"}' $$ "$(cat /proc/sys/kernel/random/boot_id)" "$(hostname)" > ${file}`;
    const holder = asService(`${lock('/run/smolotchi/locks/release.lock')} && ${lock('/run/smolotchi/locks/release.lock.json')} && exec sleep 900`);
    // Wait for the lock to appear, not for the clock; the holder lives until the test kills it (900 s is a hang guard).
    const planted = await asRoot('for i in $(seq 6000); do [ -s /run/smolotchi/locks/release.lock ] && exit 0; sleep 0.1; done; echo "hang guard: no lock after 10 min" >&2; exit 1');
    expect(planted.exitCode, explain(planted)).toBe(0);
    const back = await smolotchi(sb, ['release', 'rollback']);
    expect(back.exitCode, explain(back)).toBe(0);
    expect(await currentVersion(sb)).toBe('1.0.0');
    const forth = await smolotchi(sb, ['release', 'rollback', '--to', '1.1.0']);
    expect(forth.exitCode, explain(forth)).toBe(0);
    // The holder's pid is the one it wrote into its lock (`exec sleep` kept it).
    await asRoot(`kill "$(sed 's/.*"pid":\\([0-9]*\\).*/\\1/' /run/smolotchi/locks/release.lock)"; rm -f /run/smolotchi/locks/release.lock /run/smolotchi/locks/release.lock.json`);
    await holder;
    await expectUnchanged(before);
  });

  it('a forged history at the old place (/var/lib/smolotchi/releases.db) cannot force a downgrade or clear marks', async () => {
    // A device upgraded from a tool that kept the history where the service user could write it.
    const setup = await asRoot(
      'mv /var/lib/smolotchi/release/releases.db /var/lib/smolotchi/releases.db && ' +
        'rm -rf /var/lib/smolotchi/release /var/lib/smolotchi/releases.db-wal /var/lib/smolotchi/releases.db-shm && ' +
        'chown smolotchi:smolotchi /var/lib/smolotchi/releases.db',
    );
    expect(setup.exitCode, explain(setup)).toBe(0);
    const forge = [
      'import sqlite3',
      "db = sqlite3.connect('/var/lib/smolotchi/releases.db')",
      // A running install 1.0.0 -> 1.1.0 that never passed its gate: recovery would go back to 1.0.0.
      "db.execute(\"INSERT INTO deploys (kind, from_version, to_version, status, step, started_at, user, pid) VALUES ('install','1.0.0','1.1.0','running','health-gate','2026-01-01T00:00:00Z','root',1)\")",
      "db.execute(\"DELETE FROM release_marks WHERE version = '1.1.0'\")",
      'db.execute("DELETE FROM tag_commits")',
      'db.commit()',
      "db.execute('PRAGMA wal_checkpoint(TRUNCATE)')",
      'db.close()',
    ].join('\n');
    const forged = await asService(`/usr/bin/python3 -c "${forge.replace(/"/g, '\\"')}" && ln -sfn ${VICTIM} /var/lib/smolotchi/releases.db-wal && ln -sfn ${VICTIM} /var/lib/smolotchi/releases.db-shm`);
    expect(forged.exitCode, explain(forged)).toBe(0);
    const legacy = (await asRoot('sha256sum /var/lib/smolotchi/releases.db')).stdout;

    // What the boot runs first.
    const check = await sb.exec(['systemctl', 'start', 'smolotchi-release-check.service']);
    expect(check.exitCode, explain(check)).toBe(0);
    expect(await currentVersion(sb)).toBe('1.1.0');
    expect(await victim()).toBe(victimBefore);
    expect((await asRoot('sha256sum /var/lib/smolotchi/releases.db')).stdout).toBe(legacy);
    const rows = await deploys();
    expect(rows.map((d) => d.status)).not.toContain('interrupted');
    expect(rows[0]!.error).toMatch(/not trusted: a read-only copy is kept as \/var\/lib\/smolotchi\/release\/legacy-releases\.db.*1\.1\.0 \(current\) marked good/);
    expect(await status()).toMatchObject({ current: '1.1.0', lastGood: '1.1.0', bad: [] });
    const owners = await asRoot('stat -c "%n %U %a" /var/lib/smolotchi/release /var/lib/smolotchi/release/legacy-releases.db');
    expect(owners.stdout.split('\n')).toEqual(['/var/lib/smolotchi/release root 700', '/var/lib/smolotchi/release/legacy-releases.db root 400']);
    // And the next deploy works as ever.
    const back = await smolotchi(sb, ['release', 'rollback']);
    expect(back.exitCode, explain(back)).toBe(0);
    expect(await currentVersion(sb)).toBe('1.0.0');
  });
});
