import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeLayout } from '../../src/core/layout.js';
import { createSampleRepo } from '../../scripts/sample-app.js';
import { runCli, writeEnvFile } from '../support/cli.js';
import { startReleaseServer, type ReleaseServer } from '../support/release-server.js';

/**
 * A private git server (real smart HTTP behind Basic auth) and a source URL carrying its
 * credentials, `http://deploy:<password>@host/app.git`. The password must reach the server and
 * nothing else: no line we print (even with DEBUG=simple-git*), no JSON answer, no history row, no
 * mirror config and no git argv (which every local user can read in /proc while git runs).
 */

const USER = 'deploy';
// '@' and ':' inside: the URL must encode them; a quote comes out escaped in a debug dump of the environment.
const PASSWORD = "s3cr@t:p'w-Zq81";
const ENCODED = encodeURIComponent(PASSWORD);

let work: string;
let server: ReleaseServer;
let decoy: ReleaseServer;
let mover: ReleaseServer;
let plainUrl: string;
let withCreds: string;
/** git on PATH that logs each argv line, then runs the real git. */
let wrapperDir: string;
let argvLog: string;

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-creds-'));
  const app = await createSampleRepo(path.join(work, 'app'), [{ version: '1.0.0' }, { version: '1.1.0' }]);
  const gitRoot = path.join(work, 'served-git');
  await execa('git', ['clone', '--quiet', '--bare', app.repo, path.join(gitRoot, 'app.git')]);
  const empty = path.join(work, 'empty');
  mkdirSync(empty);
  server = await startReleaseServer({ gitRoot, filesDir: empty, basicAuth: { username: USER, password: PASSWORD } });
  // A moved server: every request goes to another host (another port), which asks for credentials too.
  decoy = await startReleaseServer({ gitRoot, filesDir: empty, basicAuth: { username: USER, password: PASSWORD } });
  mover = await startReleaseServer({ gitRoot, filesDir: empty, redirectTo: decoy.url });
  plainUrl = `${server.url}/git/app.git`;
  withCreds = plainUrl.replace('http://', `http://${USER}:${ENCODED}@`);

  wrapperDir = path.join(work, 'bin');
  mkdirSync(wrapperDir);
  argvLog = path.join(work, 'git-argv.log');
  const realGit = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
  writeFileSync(path.join(wrapperDir, 'git'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${argvLog}'\nexec '${realGit}' "$@"\n`);
  chmodSync(path.join(wrapperDir, 'git'), 0o755);
});

afterAll(async () => {
  await Promise.all([server?.close(), decoy?.close(), mover?.close()]);
  rmSync(work, { recursive: true, force: true });
});

function device(name: string) {
  const root = path.join(work, name);
  writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0 });
  const env = { PATH: `${wrapperDir}:${process.env.PATH}`, DEBUG: 'simple-git,simple-git:*' };
  return { root, cli: (args: string[]) => runCli(['release', ...args, '--root', root], { env }) };
}

/** Everything a user, a log collector or another local user could read afterwards, by name. */
function readable(root: string, outputs: Record<string, string>): Record<string, string> {
  const mirrorConfig = path.join(makeLayout(root).mirrorDir, 'config');
  return {
    ...outputs,
    'git argv': existsSync(argvLog) ? readFileSync(argvLog, 'utf8') : '',
    'mirror config': existsSync(mirrorConfig) ? readFileSync(mirrorConfig, 'utf8') : '',
  };
}

const SECRETS = [PASSWORD, ENCODED, Buffer.from(`${USER}:${PASSWORD}`).toString('base64')];
/** `<where>: <secret>` for each secret found anywhere in `texts`. */
const leaks = (texts: Record<string, string>) =>
  Object.entries(texts).flatMap(([where, text]) => SECRETS.filter((secret) => text.includes(secret)).map((secret) => `${where}: ${secret}`));

describe('a git source URL with credentials', () => {
  it('installs and upgrades from the private server; the password shows up nowhere, the URL without it everywhere', async () => {
    const { root, cli } = device('private');
    const first = await cli(['install', '1.0.0', '--source', withCreds, '--json']);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.json()).toMatchObject({ status: 'installed', version: '1.0.0', source: plainUrl });
    // The credentials did reach the server, through git's credential helper.
    expect(server.authorizations).toContain(`Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`);
    // DEBUG=simple-git* logs each call's argv and environment (the first clone went through simple-git).
    expect(first.stderr).toMatch(/SMOLOTCHI_GIT_PASSWORD: (['"])\*\*\*\1/);
    // An upgrade fetches into the existing mirror; a dry run asks the server with ls-remote.
    const dry = await cli(['install', '1.1.0', '--source', withCreds, '--dry-run', '--json']);
    expect(dry.exitCode, dry.stderr).toBe(0);
    const second = await cli(['install', '1.1.0', '--source', withCreds]);
    expect(second.exitCode, second.stderr).toBe(0);
    const history = await cli(['history', '--json']);
    const status = await cli(['status', '--json']);
    expect(history.json<{ deploys: { source: string }[] }>().deploys.map((d) => d.source)).toEqual([plainUrl, plainUrl]);
    expect(readFileSync(argvLog, 'utf8')).toMatch(/clone/);
    const outputs = { first: first.stdout + first.stderr, dry: dry.stdout + dry.stderr, second: second.stdout + second.stderr, history: history.stdout, status: status.stdout };
    expect(leaks(readable(root, outputs))).toEqual([]);
  });

  it('are kept nowhere: the same URL without them is refused by the server, and the running release stays', async () => {
    const { root, cli } = device('private');
    // latest: asked of the server, through the mirror's fetch (both versions are already on disk).
    const r = await cli(['install', 'latest', '--source', plainUrl]);
    expect(r.exitCode, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(/git sync from http:\/\/127\.0\.0\.1:\d+\/git\/app\.git failed/);
    const status = await cli(['status', '--json']);
    expect(status.json()).toMatchObject({ current: '1.1.0' });
    expect(leaks(readable(root, { stderr: r.stderr }))).toEqual([]);
  });

  it('go to the host the operator named only: a redirect to another host gets none, and the install fails', async () => {
    const { root, cli } = device('moved');
    const before = decoy.authorizations.length;
    const moved = `${mover.url}/git/app.git`.replace('http://', `http://${USER}:${ENCODED}@`);
    const r = await cli(['install', '1.0.0', '--source', moved]);
    expect(r.exitCode).not.toBe(0);
    expect(decoy.hits.git, 'the redirect was not followed: the test proves nothing').toBeGreaterThan(0);
    expect(decoy.authorizations.slice(before)).toEqual([]);
    expect(mover.authorizations).toEqual([]); // none sent before the server asked for them
    expect(existsSync(path.join(makeLayout(root).optDir, 'current'))).toBe(false);
    expect(leaks(readable(root, { stderr: r.stderr }))).toEqual([]);
  });

  it('bad percent-encoding or a line break in them is a usage error (exit 2) that echoes neither', async () => {
    const { root, cli } = device('bad-creds');
    for (const userinfo of [`${USER}:%zz${ENCODED}`, `${USER}:${ENCODED}%0aprotocol=https`]) {
      const r = await cli(['install', '1.0.0', '--source', plainUrl.replace('http://', `http://${userinfo}@`)]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/credentials in the source URL/);
      expect(leaks({ stderr: r.stderr })).toEqual([]);
    }
    expect(existsSync(makeLayout(root).mirrorDir)).toBe(false);
  });

  it('in /etc/smolotchi/env they need a file only root can read: exit 2 before any request, then fine after chmod 600', async () => {
    const root = path.join(work, 'env-file');
    writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0, SMOLOTCHI_RELEASE_SOURCE: `"${withCreds}"` }); // quoted: the password holds a quote
    const envFile = makeLayout(root).envFile;
    chmodSync(envFile, 0o644);
    const hits = server.hits.git;
    const shared = await runCli(['release', 'install', '1.0.0', '--root', root, '--dry-run']);
    expect(shared.exitCode, shared.stderr).toBe(2);
    expect(shared.stderr).toMatch(/carries credentials .*readable by others \(mode 0644\)[\s\S]*chmod 600/);
    expect(server.hits.git).toBe(hits);
    expect(leaks({ stderr: shared.stderr })).toEqual([]);
    chmodSync(envFile, 0o600);
    const private_ = await runCli(['release', 'install', '1.0.0', '--root', root, '--dry-run', '--json']);
    expect(private_.exitCode, private_.stderr).toBe(0);
    expect(private_.json()).toMatchObject({ status: 'dry-run', source: plainUrl });
  });

  it('a tarball folder may not carry them: exit 2 before any request, without echoing them', async () => {
    const { cli } = device('tarball-creds');
    const hits = server.hits.files;
    const r = await cli(['install', '1.0.0', '--source', `${server.url}/files/`.replace('http://', `http://${USER}:${ENCODED}@`), '--source-kind', 'tarball']);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/credentials in a source URL are not supported/);
    expect(server.hits.files).toBe(hits);
    expect(leaks({ stderr: r.stderr })).toEqual([]);
  });
});
