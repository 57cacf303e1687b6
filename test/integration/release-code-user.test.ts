import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleApp } from '../../scripts/sample-app.js';
import { runCli, writeEnvFile } from '../support/cli.js';
import { commitFiles, gitRepo, tag } from '../support/git-repo.js';
import { attackingReleaseFiles, attackPython } from '../support/release-code-attack.js';

// Release code (smoke import, pip build backend, packaging/health-check) runs as the service user,
// never as root. Root is needed to switch users: `nobody` plays the service user under --root.
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('release code user tests skipped: switching to another uid needs root (CI runs as root)');

const NOBODY = 65534;
const VICTIM_OWNER = 12345;
let work: string;
let repo: string;
let victim: string;
let witness: string;

beforeAll(async () => {
  if (!isRoot) return;
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-release-code-'));
  chmodSync(work, 0o755); // the service user must reach the sandbox root, as on a device
  witness = path.join(work, 'witness');
  mkdirSync(witness, { mode: 0o777 });
  chmodSync(witness, 0o777);
  victim = path.join(work, 'etc-victim');
  writeFileSync(victim, 'root-only content\n');
  chownSync(victim, VICTIM_OWNER, VICTIM_OWNER);
  chmodSync(victim, 0o664);

  const app = path.join(work, 'app');
  await writeSampleApp(app, { version: '1.0.0' });
  const r = await gitRepo(app);
  const cli = readFileSync(path.join(app, 'smolotchi/cli.py'), 'utf8');
  // A link planted in the venv being built, aimed at a file root must never chown or chmod.
  const plant = `try:\n    os.symlink(${JSON.stringify(victim)}, "../../.venv/planted-link")\nexcept OSError:\n    pass\n`;
  const files = attackingReleaseFiles(cli, witness, [victim], plant);
  await commitFiles(r, files, 'release with hostile code');
  await tag(r, 'v1.0.0', { annotated: true });
  repo = app;
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Every entry under `dir` (links included, never followed) owned by `uid`. */
function ownedBy(dir: string, uid: number): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = lstatSync(p);
    if (st.uid === uid) out.push(p);
    if (st.isDirectory()) out.push(...ownedBy(p, uid));
  }
  return out;
}

describe.skipIf(!isRoot)('release code runs as the service user (nobody plays it under --root)', () => {
  it('smoke import, build backend and health check run as nobody; root files and planted links stay untouched', async () => {
    const root = path.join(work, 'root');
    writeEnvFile(root, { SMOLOTCHI_RELEASE_SOURCE: repo, SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0 });
    const r = await runCli(['release', 'install', '1.0.0', '--root', root, '--verbose'], { env: { SMOLOTCHI_TEST_SERVICE_USER: 'nobody' } });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain('release code runs as nobody');
    for (const step of ['build-backend', 'smoke-import', 'health-check']) {
      expect(readFileSync(path.join(witness, `${step}-uid`), 'utf8'), step).toBe(String(NOBODY));
    }
    // Nobody could not write it, and the ownership pass did not follow the planted link to it.
    expect(readFileSync(victim, 'utf8')).toBe('root-only content\n');
    const v = statSync(victim);
    expect([v.uid, v.mode & 0o7777]).toEqual([VICTIM_OWNER, 0o664]);
    const release = path.join(root, 'opt/smolotchi/releases/1.0.0');
    expect(lstatSync(path.join(release, '.venv/planted-link')).uid).toBe(0);
    // What nobody built (venv, bytecode) is root's and read-only before the stamp vouches for it.
    expect(ownedBy(release, NOBODY)).toEqual([]);
    expect(readdirSync(path.join(release, 'smolotchi/__pycache__')).some((f) => f.startsWith('cli.'))).toBe(true);
    const verify = await runCli(['release', 'verify', '--root', root]);
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
  });

  // Hostile: an upgrade with the same requirements imports the app while its venv is cloned and its
  // code compiled as nobody, who may still write the code's __pycache__/ folders meanwhile.
  it("a same-requirements upgrade's early smoke import cannot plant anything in the __pycache__ nobody compiles into", async () => {
    const app = path.join(work, 'app-same');
    const seen = path.join(work, 'witness-same');
    mkdirSync(seen, { mode: 0o777 });
    chmodSync(seen, 0o777);
    await writeSampleApp(app, { version: '1.0.0' });
    const r = await gitRepo(app);
    await commitFiles(r, {}, 'sample app');
    await tag(r, 'v1.0.0', { annotated: true });
    const cli = readFileSync(path.join(app, 'smolotchi/cli.py'), 'utf8');
    const plant = [
      'import sys',
      `open(${JSON.stringify(`${seen}/prefix`)}, "a").write(sys.prefix + "\\n")`,
      'try:',
      `    os.symlink(${JSON.stringify(victim)}, os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__", "planted.pyc"))`,
      `    open(${JSON.stringify(`${seen}/planted`)}, "w").write("yes")`,
      'except OSError as e:',
      `    open(${JSON.stringify(`${seen}/planted`)}, "w").write(str(e))`,
      '',
    ].join('\n');
    await writeSampleApp(app, { version: '1.1.0' });
    await commitFiles(r, { 'smolotchi/cli.py': attackPython('smoke-import', seen, [victim]) + plant + cli }, 'same requirements, hostile import');
    await tag(r, 'v1.1.0', { annotated: true });
    const root = path.join(work, 'root-same');
    writeEnvFile(root, { SMOLOTCHI_RELEASE_SOURCE: app, SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0 });
    const env = { SMOLOTCHI_TEST_SERVICE_USER: 'nobody' };
    for (const version of ['1.0.0', '1.1.0']) {
      const step = await runCli(['release', 'install', version, '--root', root], { env });
      expect(step.exitCode, step.stderr).toBe(0);
    }
    const releases = path.join(root, 'opt/smolotchi/releases');
    // The import ran once, from 1.0.0's identical venv, as nobody, and found its own tree read-only.
    expect(readFileSync(path.join(seen, 'prefix'), 'utf8').trim().split('\n')).toEqual([path.join(releases, '1.0.0/.venv')]);
    expect(readFileSync(path.join(seen, 'smoke-import-uid'), 'utf8')).toBe(String(NOBODY));
    expect(readFileSync(path.join(seen, 'planted'), 'utf8')).toContain('Read-only file system');
    expect(readdirSync(path.join(releases, '1.1.0/smolotchi/__pycache__')).filter((f) => !/^[\w]+\.cpython-\d+\.pyc$/.test(f))).toEqual([]);
    expect(readFileSync(victim, 'utf8')).toBe('root-only content\n');
    const v = statSync(victim);
    expect([v.uid, v.mode & 0o7777]).toEqual([VICTIM_OWNER, 0o664]);
    expect(ownedBy(path.join(releases, '1.1.0'), NOBODY)).toEqual([]);
    const verify = await runCli(['release', 'verify', '--root', root]);
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
  });

  it('the environment of release code carries nothing of root: fixed PATH, no HOME, no inherited secrets', async () => {
    const root = path.join(work, 'root-env');
    writeEnvFile(root, { SMOLOTCHI_RELEASE_SOURCE: repo, SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0 });
    const r = await runCli(['release', 'install', '1.0.0', '--root', root], {
      env: { SMOLOTCHI_TEST_SERVICE_USER: 'nobody', AWS_SECRET_ACCESS_KEY: 'leak-me', PIP_INDEX_URL: 'http://root-index.invalid/' },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    for (const step of ['build-backend', 'smoke-import', 'health-check']) {
      const env = JSON.parse(readFileSync(path.join(witness, `${step}-env`), 'utf8')) as Record<string, string>;
      // pip puts its own build environment in front for the backend; the rest is the fixed PATH.
      expect(env.PATH!.split(':').slice(-6).join(':'), step).toBe('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
      expect(env.PATH!.split(':').filter((d) => !d.startsWith('/tmp/pip-build-env-')), step).toHaveLength(6);
      expect(env.HOME, step).toBe('/nonexistent');
      expect(env.AWS_SECRET_ACCESS_KEY, step).toBeUndefined();
      expect(env.PIP_INDEX_URL, step).toBeUndefined();
    }
  });

  it('refuses a test user that does not exist, and never falls back to root', async () => {
    const root = path.join(work, 'root-nouser');
    writeEnvFile(root, { SMOLOTCHI_RELEASE_SOURCE: repo });
    const r = await runCli(['release', 'install', '1.0.0', '--root', root], { env: { SMOLOTCHI_TEST_SERVICE_USER: 'no-such-user-here' } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('no such user');
  });
});
