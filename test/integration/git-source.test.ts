import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { archiveStream, listTags, lsRemoteTags, PARTIAL_MIRROR_INFIX, syncMirror } from '../../src/adapters/git.js';
import { gitDirect } from '../../src/adapters/git-run.js';
import { taggedTreeBytes } from '../../src/adapters/git-size.js';
import { ReleaseError } from '../../src/core/errors.js';
import { fetchGit, listGitVersions, resolveGitLatest } from '../../src/core/build/sources/git.js';
import { commitFiles, gitRepo, runGit, tag, type GitRepo } from '../support/git-repo.js';

let tmp: string;
let repo: GitRepo;
let mirrorDir: string;
let n = 0;

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'smolotchi-git-'));
  repo = await gitRepo(path.join(tmp, 'src'));
  mirrorDir = path.join(tmp, 'cache', 'repo.git');
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const opts = () => ({ source: repo.dir, mirrorDir });
const staging = () => path.join(tmp, 'staging', `s${n++}`);
const fetch = (version: string, extra: { source?: string; syncMirror?: boolean } = {}) =>
  fetchGit({ ...opts(), version, stagingDir: staging(), ...extra });

/** Resolves to the rejection, failing the test if the promise fulfils. */
async function failure(p: Promise<unknown>): Promise<ReleaseError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ReleaseError);
  return err as ReleaseError;
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

describe('listing versions', () => {
  it('reads v<ver> and <ver> tags, ignoring junk and hostile names', async () => {
    await commitFiles(repo, { 'a.txt': 'a' }, 'one');
    for (const t of ['v1.0.0', '1.1.0', 'v2.0.0-rc.1', 'latest', 'v1.0', 'v01.0.0', 'vv3.0.0', 'v1.0.0;rm', 'release-9.9.9']) {
      await tag(repo, t);
    }
    await runGit(repo.dir, ['branch', 'v7.0.0']); // a branch is never a version
    expect(await listGitVersions(opts())).toEqual(['1.0.0', '1.1.0', '2.0.0-rc.1']);
    expect(await resolveGitLatest(opts())).toBe('1.1.0');
    await expect(fetch('7.0.0')).rejects.toMatchObject({ exitCode: 3 });
  });

  it('latest with only prereleases is not found (exit 3)', async () => {
    await commitFiles(repo, { 'a.txt': 'a' }, 'one');
    await tag(repo, 'v1.0.0-beta.1');
    const err = await failure(resolveGitLatest(opts()));
    expect(err.exitCode).toBe(3);
    expect(err.hint).toContain('1.0.0-beta.1');
  });
});

describe('fetching a version', () => {
  it("exports exactly the tag's tree and records the peeled commit", async () => {
    const first = await commitFiles(repo, { 'app/a.txt': 'old', 'bin/run': { content: '#!/bin/sh\n', mode: 0o755 } }, 'one');
    await tag(repo, 'v1.0.0', { annotated: true });
    await commitFiles(repo, { 'app/a.txt': 'new', 'later.txt': 'x' }, 'two');
    await runGit(repo.dir, ['branch', 'v1.0.0']); // same-named branch elsewhere must not win

    const stagingDir = staging();
    const got = await fetchGit({ ...opts(), version: 'v1.0.0', stagingDir });
    expect(got).toMatchObject({ version: '1.0.0', kind: 'git', source: repo.dir, commit: first });
    expect(got.bytes).toBeGreaterThan(0);
    expect(await fs.readFile(path.join(stagingDir, 'app/a.txt'), 'utf8')).toBe('old');
    expect(await exists(path.join(stagingDir, 'later.txt'))).toBe(false);
    expect((await fs.stat(path.join(stagingDir, 'bin/run'))).mode & 0o111).not.toBe(0);
  });

  it('reuses the mirror and sees tags added later', async () => {
    await commitFiles(repo, { 'a.txt': '1' }, 'one');
    await tag(repo, 'v1.0.0');
    await fetch('1.0.0');
    const inode = (await fs.stat(mirrorDir)).ino;
    const second = await commitFiles(repo, { 'a.txt': '2' }, 'two');
    await tag(repo, '1.2.0');
    expect((await fetch('1.2.0')).commit).toBe(second);
    expect((await fs.stat(mirrorDir)).ino).toBe(inode);
  });

  it('sees a moved tag after sync, and a deleted one disappears', async () => {
    await commitFiles(repo, { 'a.txt': 'first' }, 'one');
    await tag(repo, 'v1.0.0');
    await tag(repo, 'v1.5.0');
    await fetch('1.0.0');
    const moved = await commitFiles(repo, { 'a.txt': 'second' }, 'two');
    await tag(repo, 'v1.0.0', { force: true, annotated: true });
    await runGit(repo.dir, ['tag', '-d', 'v1.5.0']);
    const stagingDir = staging();
    expect((await fetchGit({ ...opts(), version: '1.0.0', stagingDir })).commit).toBe(moved);
    expect(await fs.readFile(path.join(stagingDir, 'a.txt'), 'utf8')).toBe('second');
    expect(await listGitVersions(opts())).toEqual(['1.0.0']);
  });

  it('follows a changed source URL', async () => {
    await commitFiles(repo, { 'a.txt': '1' }, 'one');
    await tag(repo, 'v1.0.0');
    await syncMirror(repo.dir, mirrorDir);
    const other = await gitRepo(path.join(tmp, 'other'));
    await commitFiles(other, { 'b.txt': '1' }, 'other');
    await tag(other, 'v3.0.0');
    expect(await listGitVersions({ source: other.dir, mirrorDir })).toEqual(['3.0.0']);
  });

  it('unknown version: exit 3 with the nearest versions as a hint', async () => {
    await commitFiles(repo, { 'a.txt': '1' }, 'one');
    for (const t of ['v1.0.0', 'v1.1.0', 'v1.2.0', 'v1.4.0', 'v2.0.0', 'v3.0.0', 'v4.0.0', 'v5.0.0']) await tag(repo, t);
    const err = await failure(fetch('1.3.0'));
    expect(err.exitCode).toBe(3);
    expect(err.hint).toBe('nearest available: 1.0.0, 1.1.0, 1.2.0, 1.4.0, 2.0.0, 3.0.0');
  });

  it('v<ver> and <ver> on different commits is refused as ambiguous (exit 4); on the same commit it is fine', async () => {
    await commitFiles(repo, { 'a.txt': '1' }, 'one');
    await tag(repo, 'v1.0.0');
    await tag(repo, '1.0.0', { annotated: true });
    await fetch('1.0.0');
    await commitFiles(repo, { 'a.txt': '2' }, 'two');
    await tag(repo, '1.0.0', { force: true });
    expect((await failure(fetch('1.0.0'))).exitCode).toBe(4);
  });
});

describe('hostile input', () => {
  const marker = () => path.join(tmp, 'pwned');

  it.each<[string, (marker: string) => string]>([
    ['--upload-pack', (m) => `--upload-pack=touch ${m}`],
    ['-c', () => '-c'],
    ['--help', () => '--help'],
    ['-c config injection', (m) => `-cprotocol.ext.allow=always ext::sh -c touch% ${m}`],
    ['ext:: helper', (m) => `ext::sh -c touch% ${m}`],
    ['fd:: helper', () => 'fd::17'],
    ['ssh host as option', (m) => `ssh://-oProxyCommand=touch%20${m}/repo`],
    ['scp host as option', (m) => `-oProxyCommand=touch ${m}:repo`],
    ['user@scp host as option', () => 'git@-oProxyCommand=id:repo'],
    ['newline smuggling', () => 'https://example.invalid/repo\n--upload-pack=x'],
    ['unlisted scheme', () => 'ftp://example.invalid/repo'],
  ])('source %s is refused with exit 2 and no side effect', async (_name, make) => {
    const err = await failure(fetch('1.0.0', { source: make(marker()) }));
    expect(err.exitCode).toBe(2);
    expect(await exists(marker())).toBe(false);
    expect(await exists(mirrorDir)).toBe(false);
  });

  it.each(['--output=x', '1.0.0^{tree}', 'HEAD', 'main', '1.0.0:a.txt', '../1.0.0', 'v1.0.0;rm'])(
    'version %j is refused with exit 2 before git sees it',
    async (version) => {
      const err = await failure(fetch(version));
      expect(err.exitCode).toBe(2);
      expect(await exists(mirrorDir)).toBe(false);
    },
  );

  it('a repo with a symlink leaving the tree is refused with exit 4 (and git does not hang)', async () => {
    const big = 'x'.repeat(1 << 20); // more than a pipe buffer after the bad entry
    await commitFiles(repo, { 'a-link': { symlink: '/etc/passwd' }, 'z1': big, 'z2': big, 'z3': big }, 'evil');
    await tag(repo, 'v1.0.0');
    await commitFiles(repo, { 'a-link': { symlink: '../../../../etc/passwd' } }, 'evil too');
    await tag(repo, 'v1.0.1');
    expect((await failure(fetch('1.0.0'))).exitCode).toBe(4);
    expect((await failure(fetch('1.0.1'))).exitCode).toBe(4);
  });

  it('the mirror never shares object files with a local source (no hard links)', async () => {
    await commitFiles(repo, { 'a.txt': '1' }, 'one');
    await runGit(repo.dir, ['gc', '--quiet']);
    await syncMirror(repo.dir, mirrorDir);
    const files = (await fs.readdir(path.join(mirrorDir, 'objects'), { recursive: true })) as string[];
    for (const f of files) {
      const st = await fs.stat(path.join(mirrorDir, 'objects', f));
      if (st.isFile()) expect(st.nlink, f).toBe(1);
    }
  });
});

describe('failures', () => {
  it('a source path that does not exist is named in the error', async () => {
    const missing = path.join(tmp, 'no-such-repo');
    const err = await failure(fetch('1.0.0', { source: missing }));
    expect(err.message).toContain(missing);
    expect(await exists(mirrorDir)).toBe(false);
  });

  it('a directory that is not a repository fails with a git error naming the source', async () => {
    const notRepo = path.join(tmp, 'plain');
    await fs.mkdir(notRepo);
    const err = await failure(fetch('1.0.0', { source: notRepo }));
    expect(err.message).toContain(notRepo);
    expect(await exists(mirrorDir)).toBe(false);
  });

  it('a server that accepts and never answers is given up at the call\'s deadline, naming the source', async () => {
    const held: net.Socket[] = [];
    const server = net.createServer((socket) => held.push(socket)).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const url = `git://127.0.0.1:${(server.address() as net.AddressInfo).port}/repo`;
    try {
      const err = await failure(lsRemoteTags(url, 1_000));
      expect(err.exitCode).toBe(1);
      expect(err.message).toBe(`git ls-remote ${url} failed (killed by SIGINT): no answer within 1 s`);
    } finally {
      for (const socket of held) socket.destroy();
      server.close();
    }
  });

  it('a mirror fetch that fails (the source is no repository any more) names the source, git\'s exit code and its reason', async () => {
    await commitFiles(repo, { 'a.txt': '1' }, 'one');
    await tag(repo, 'v1.0.0');
    await syncMirror(repo.dir, mirrorDir);
    await fs.rm(repo.dir, { recursive: true, force: true });
    await fs.mkdir(repo.dir);
    const err = await failure(syncMirror(repo.dir, mirrorDir));
    expect(err.exitCode).toBe(1);
    expect(err.message).toMatch(new RegExp(`^git sync from ${repo.dir} failed \\(exit 128\\): `));
    expect((err as ReleaseError & { stderrTail: string }).stderrTail).toMatch(/not appear to be a git repository/);
    expect((err as ReleaseError & { argv: string[] }).argv).toEqual(expect.arrayContaining(['-c', 'core.attributesFile=/dev/null', '-c', 'transfer.fsckObjects=true', 'fetch']));
    expect(await listTags(mirrorDir)).toEqual(['v1.0.0']); // the mirror is as it was
  });

  it('a quiet git call (the mirror fetch) to a server that never answers is given up at its deadline', async () => {
    await commitFiles(repo, { 'a.txt': '1' }, 'one');
    await syncMirror(repo.dir, mirrorDir);
    const held: net.Socket[] = [];
    const server = net.createServer((socket) => held.push(socket)).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const url = `git://127.0.0.1:${(server.address() as net.AddressInfo).port}/repo`;
    try {
      await runGit(tmp, [`--git-dir=${mirrorDir}`, 'remote', 'set-url', 'origin', url]);
      const err = await failure(gitDirect(mirrorDir, ['fetch', '--quiet', 'origin'], { timeoutMs: 1_000, what: 'git sync' }));
      expect(err.exitCode).toBe(1);
      expect(err.message).toBe('git sync failed (killed by SIGINT): no answer within 1 s');
    } finally {
      for (const socket of held) socket.destroy();
      server.close();
    }
  });

  it('an interrupted first clone does not break the next sync', async () => {
    await commitFiles(repo, { 'a.txt': '1' }, 'one');
    await tag(repo, 'v1.0.0');
    const leftover = `${mirrorDir}${PARTIAL_MIRROR_INFIX}Ab12Cd`;
    await fs.mkdir(path.join(leftover, 'objects'), { recursive: true });
    await fs.writeFile(path.join(leftover, 'HEAD'), 'ref: refs/heads/main\n');
    expect(await listGitVersions(opts())).toEqual(['1.0.0']);
    expect(await exists(leftover)).toBe(false);
    expect(await listTags(mirrorDir)).toEqual(['v1.0.0']);
  });

  it('a git archive failure is surfaced, not hidden by the extractor', async () => {
    await commitFiles(repo, { 'a.txt': '1' }, 'one');
    await syncMirror(repo.dir, mirrorDir);
    // A commit whose tree does not exist: rev-parse accepts it, git archive cannot export it.
    const body = `tree ${'1'.repeat(40)}\nauthor A <a@b> 0 +0000\ncommitter A <a@b> 0 +0000\n\nbroken\n`;
    const broken = await runGit(tmp, [`--git-dir=${mirrorDir}`, 'hash-object', '-t', 'commit', '-w', '--stdin'], body);
    await runGit(tmp, [`--git-dir=${mirrorDir}`, 'update-ref', 'refs/tags/v9.0.0', broken]);
    const err = await failure(fetch('9.0.0', { syncMirror: false }));
    expect(err.message).toMatch(/^git archive failed/);
    expect((err as ReleaseError & { argv: string[] }).argv).toContain('archive');
  });

  it('archiveStream keeps the first bytes for a reader that attaches late', async () => {
    const commit = await commitFiles(repo, { 'a.txt': '1' }, 'one');
    await syncMirror(repo.dir, mirrorDir);
    const archive = archiveStream(mirrorDir, commit);
    // "Late": only once git's first bytes are already waiting in the stream.
    await until(() => archive.stdout.readableLength > 0);
    const chunks: Buffer[] = [];
    for await (const chunk of archive.stdout) chunks.push(chunk as Buffer);
    await archive.done;
    expect(Buffer.concat(chunks).subarray(0, 17).toString()).toBe('pax_global_header');
  });

  it('archiveStream: a reader that stops early or cancels ends git without an error', async () => {
    const big = 'x'.repeat(1 << 20);
    const commit = await commitFiles(repo, { a: big, b: big, c: big }, 'big');
    await syncMirror(repo.dir, mirrorDir);
    const closed = archiveStream(mirrorDir, commit);
    for await (const _chunk of closed.stdout) break; // destroys the stream after the first chunk
    await expect(closed.done).resolves.toBeUndefined();
    const cancelled = archiveStream(mirrorDir, commit);
    // The stream's buffer is full and nobody reads: git is now blocked on a full pipe.
    await until(() => cancelled.stdout.readableLength >= cancelled.stdout.readableHighWaterMark);
    cancelled.cancel();
    await expect(cancelled.done).resolves.toBeUndefined();
  });

  it.skipIf(process.getuid?.() !== 0)('a mirror owned by another user is still readable (no safe.directory needed)', async () => {
    await commitFiles(repo, { 'a.txt': '1' }, 'one');
    await tag(repo, 'v1.0.0');
    await syncMirror(repo.dir, mirrorDir);
    await fs.chown(mirrorDir, 65534, 65534);
    for (const f of (await fs.readdir(mirrorDir, { recursive: true })) as string[]) {
      await fs.lchown(path.join(mirrorDir, f), 65534, 65534);
    }
    expect(await listTags(mirrorDir)).toEqual(['v1.0.0']);
  });

  it('archiveStream refuses anything but a full object id', () => {
    expect(() => archiveStream(mirrorDir, '--remote=x')).toThrow(ReleaseError);
    expect(() => archiveStream(mirrorDir, 'HEAD')).toThrow(ReleaseError);
  });
});

/** Wait for a condition the code under test makes true (polled; no fixed sleep). */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
}

describe('taggedTreeBytes (the preflight\'s tree size)', () => {
  it('sums the blob sizes of v<ver> (annotated) or <ver> (lightweight); null for a missing tag or mirror', async () => {
    expect(await taggedTreeBytes(mirrorDir, '1.0.0')).toBeNull(); // no mirror yet
    await commitFiles(repo, { 'a.txt': 'x'.repeat(100), 'pkg/b.py': 'y'.repeat(23) }, 'one');
    await tag(repo, 'v1.0.0', { annotated: true });
    await commitFiles(repo, { 'c.txt': 'z'.repeat(1000) }, 'two');
    await tag(repo, '1.1.0');
    await syncMirror(repo.dir, mirrorDir);
    expect(await taggedTreeBytes(mirrorDir, '1.0.0')).toBe(123);
    expect(await taggedTreeBytes(mirrorDir, '1.1.0')).toBe(1123);
    expect(await taggedTreeBytes(mirrorDir, '9.9.9')).toBeNull();
  });
});
