import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleRepo } from '../../scripts/sample-app.js';
import { runCli, writeEnvFile } from '../support/cli.js';
import { startReleaseServer, type ReleaseServer } from '../support/release-server.js';

/**
 * Sources as operators write them, against a real git repository served over plain HTTP on
 * loopback (git http-backend) and a folder of archives on the same server: `.git` URLs,
 * URLs that answer git's protocol, tarball folders with a listing, `git+http://`,
 * `--source-kind`, and SMOLOTCHI_RELEASE_* from the environment (below flags, above the file).
 */

interface InstallJson {
  status: string;
  version: string;
  sourceKind: string;
  source: string;
  commit: string | null;
  sha256: string | null;
}

let work: string;
let tags: Record<string, string>;
let server: ReleaseServer;
let gitUrl: string; // ends in .git
let plainGitUrl: string; // a git repository whose URL says nothing
let filesUrl: string;

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-kinds-'));
  const app = await createSampleRepo(path.join(work, 'app'), [{ version: '1.0.0' }, { version: '1.1.0' }, { version: '1.2.0-rc.1' }]);
  tags = app.tags;
  const gitRoot = path.join(work, 'served-git');
  for (const name of ['app.git', 'plain']) await execa('git', ['clone', '--quiet', '--bare', app.repo, path.join(gitRoot, name)]);
  const files = path.join(work, 'served-files');
  mkdirSync(files);
  for (const v of ['1.0.0', '1.1.0', '1.2.0-rc.1']) {
    const archive = path.join(files, `smolotchi-${v}.tar.gz`);
    await execa('git', ['-C', app.repo, 'archive', '--format=tar.gz', `--prefix=smolotchi-${v}/`, '-o', archive, `v${v}`]);
    writeFileSync(`${archive}.sha256`, `${createHash('sha256').update(readFileSync(archive)).digest('hex')}  smolotchi-${v}.tar.gz\n`);
  }
  server = await startReleaseServer({ gitRoot, filesDir: files });
  gitUrl = `${server.url}/git/app.git`;
  plainGitUrl = `${server.url}/git/plain`;
  filesUrl = `${server.url}/files/`;
});

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

/** A fresh sandbox root; `file` goes to its /etc/smolotchi/env (a zero settle window always). */
function device(name: string, file: Record<string, string> = {}) {
  const root = path.join(work, name);
  writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0, ...file });
  return (args: string[], env: Record<string, string> = {}) => runCli(['release', ...args, '--root', root, '--json'], { env });
}

describe('http(s) sources', () => {
  it('a URL ending in .git is a git source: install <ver>', async () => {
    const cli = device('dot-git');
    const r = await cli(['install', '1.0.0', '--source', gitUrl]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json<InstallJson>()).toMatchObject({ status: 'installed', version: '1.0.0', sourceKind: 'git', commit: tags['1.0.0'] });
  });

  it('a URL that answers git without saying so; from SMOLOTCHI_RELEASE_SOURCE in the environment; install latest', async () => {
    const cli = device('plain-git');
    const env = { SMOLOTCHI_RELEASE_SOURCE: plainGitUrl };
    const dry = await cli(['install', 'latest', '--dry-run'], env);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.json<InstallJson>()).toMatchObject({ status: 'dry-run', version: '1.1.0', sourceKind: 'git', commit: tags['1.1.0'] });
    const r = await cli(['install', 'latest'], env);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json<InstallJson>()).toMatchObject({ status: 'installed', version: '1.1.0', sourceKind: 'git', source: plainGitUrl });
  });

  it('a folder of archives on a web server: install <ver>, and latest from its listing', async () => {
    const cli = device('files');
    const r = await cli(['install', '1.0.0', '--source', filesUrl]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json<InstallJson>()).toMatchObject({ version: '1.0.0', sourceKind: 'tarball' });
    const dry = await cli(['install', 'latest', '--source', filesUrl, '--dry-run']);
    expect(dry.json<InstallJson>()).toMatchObject({ status: 'dry-run', version: '1.1.0', sourceKind: 'tarball' });
    const latest = await cli(['install', 'latest', '--source', filesUrl]);
    expect(latest.exitCode, latest.stderr).toBe(0);
    expect(latest.json<InstallJson>()).toMatchObject({ status: 'installed', version: '1.1.0', sourceKind: 'tarball' });
    expect(latest.json<InstallJson>().sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('latest from a folder without a listing is refused with a hint (exit 3)', async () => {
    const cli = device('no-listing');
    const r = await cli(['install', 'latest', '--source', `${server.url}/files/nothing-here/`]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/lists no smolotchi-<version>\.tar\.gz[\s\S]*hint: .*autoindex/);
  });
});

describe('forcing the kind', () => {
  it('--source-kind tarball takes even a git URL for a folder of archives', async () => {
    const cli = device('forced-tarball');
    const r = await cli(['install', '1.0.0', '--source', plainGitUrl, '--source-kind', 'tarball']);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain(`no smolotchi-1.0.0.tar.gz at ${plainGitUrl}/`);
  });

  it('git+http:// and SMOLOTCHI_RELEASE_SOURCE_KIND=git make a URL a git source without asking it', async () => {
    const byPrefix = await device('git-plus')(['install', '1.0.0', '--source', `git+${plainGitUrl}`, '--dry-run']);
    expect(byPrefix.json<InstallJson>()).toMatchObject({ sourceKind: 'git', source: plainGitUrl, commit: tags['1.0.0'] });
    // The files folder is no git repository: forced to git, it fails as one (not as a missing archive).
    const forced = await device('kind-setting', { SMOLOTCHI_RELEASE_SOURCE_KIND: 'git' })(['install', '1.0.0', '--source', filesUrl, '--dry-run']);
    expect(forced.exitCode).not.toBe(0);
    expect(forced.stderr).toMatch(/git ls-remote/);
  });

  it('a bad kind is a usage error naming where it came from (exit 2)', async () => {
    expect((await device('bad-kind-flag')(['install', '1.0.0', '--source', gitUrl, '--source-kind', 'svn'])).exitCode).toBe(2);
    const r = await device('bad-kind-env')(['install', '1.0.0', '--source', gitUrl], { SMOLOTCHI_RELEASE_SOURCE_KIND: 'svn' });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('SMOLOTCHI_RELEASE_SOURCE_KIND');
  });
});

describe('settings from the environment', () => {
  it('flags win over the environment, the environment over /etc/smolotchi/env', async () => {
    const cli = device('precedence', { SMOLOTCHI_RELEASE_SOURCE: path.join(work, 'no-such-source') });
    const fromFile = await cli(['install', '1.0.0', '--dry-run']);
    expect(fromFile.exitCode).toBe(3);
    expect(fromFile.stderr).toContain('no-such-source');
    const env = { SMOLOTCHI_RELEASE_SOURCE: filesUrl };
    expect((await cli(['install', '1.0.0', '--dry-run'], env)).json<InstallJson>()).toMatchObject({ sourceKind: 'tarball', source: filesUrl });
    expect((await cli(['install', '1.0.0', '--dry-run', '--source', gitUrl], env)).json<InstallJson>()).toMatchObject({ sourceKind: 'git', source: gitUrl });
  });

  it('every SMOLOTCHI_RELEASE_* key counts from the environment, checked as in the file', async () => {
    const cli = device('env-keys');
    const kept = await cli(['prune', '--dry-run'], { SMOLOTCHI_RELEASE_KEEP: 'many' });
    expect(kept.exitCode).toBe(2);
    expect(kept.stderr).toContain('SMOLOTCHI_RELEASE_KEEP');
    const unknown = await cli(['status'], { SMOLOTCHI_RELEASE_KEPE: '3' });
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('unknown setting SMOLOTCHI_RELEASE_KEPE (in the environment)');
  });
});
