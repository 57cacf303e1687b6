import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import { kindFromText } from '../../src/core/build/source-kind.js';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import * as tar from 'tar';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../src/adapters/process.js';
import { copyAndHash, createTarGz, extractTarFile, extractTarStream, sha256File, tarHeader } from '../../src/adapters/tar.js';
import { ReleaseError } from '../../src/core/errors.js';
import {
  fetchTarball,
  fetchTarballFile,
  listTarballVersions,
  parseChecksum,
} from '../../src/core/build/sources/tarball.js';

let base: string;
let srcTree: string;
let sourceDir: string;
let staging: string;
let workDir: string;

const sha = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');
const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

async function makeTree(dir: string): Promise<void> {
  await fs.mkdir(path.join(dir, 'smolotchi', 'web'), { recursive: true });
  await fs.mkdir(path.join(dir, 'requirements'), { recursive: true });
  await fs.mkdir(path.join(dir, 'bin'), { recursive: true });
  await fs.mkdir(path.join(dir, 'empty-dir'), { recursive: true });
  await fs.writeFile(path.join(dir, 'smolotchi', '__init__.py'), 'VERSION = "1.2.3"\n');
  await fs.writeFile(path.join(dir, 'smolotchi', 'web', 'app.py'), 'app = None\n');
  await fs.writeFile(path.join(dir, 'smolotchi', 'empty.txt'), '');
  await fs.writeFile(path.join(dir, 'requirements', 'base.txt'), 'flask==3.0.0\n');
  await fs.writeFile(path.join(dir, 'blob.bin'), randomBytes(3 * 1024 * 1024 + 17));
  await fs.writeFile(path.join(dir, 'bin', 'smolotchi'), '#!/bin/sh\nexec python3 -m smolotchi.cli "$@"\n', { mode: 0o755 });
  await fs.writeFile(path.join(dir, 'bin', 'suid'), '#!/bin/sh\n', { mode: 0o755 });
  await fs.chmod(path.join(dir, 'bin', 'suid'), 0o4755);
  await fs.writeFile(path.join(dir, 'private.cfg'), 'x=1\n', { mode: 0o600 });
  await fs.symlink('smolotchi/web', path.join(dir, 'web-link'));
  await fs.link(path.join(dir, 'requirements', 'base.txt'), path.join(dir, 'requirements', 'hardlinked.txt'));
  await fs.writeFile(path.join(dir, `${'long-name-'.repeat(15)}.py`), '# long\n');
}

/** Relative path → kind, mode and content hash: what must survive a pack + extract round trip. */
async function describeTree(dir: string, rel = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await fs.readdir(path.join(dir, rel))).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const st = await fs.lstat(path.join(dir, r));
    if (st.isDirectory()) Object.assign(out, { [r]: 'dir' }, await describeTree(dir, r));
    else if (st.isSymbolicLink()) out[r] = `link -> ${await fs.readlink(path.join(dir, r))}`;
    else out[r] = `file ${sha(await fs.readFile(path.join(dir, r)))}`;
  }
  return out;
}

async function publish(dir: string, version: string, tree = srcTree): Promise<string> {
  const file = path.join(dir, `smolotchi-${version}.tar.gz`);
  await createTarGz(tree, file, `smolotchi-${version}`);
  await fs.writeFile(`${file}.sha256`, `${await sha256File(file)}  smolotchi-${version}.tar.gz\n`);
  return file;
}

const exitCodeOf = async (p: Promise<unknown>): Promise<{ code: number; message: string }> => {
  try {
    await p;
  } catch (err) {
    if (err instanceof ReleaseError) return { code: err.exitCode, message: err.message };
    throw err;
  }
  throw new Error('expected a rejection');
};

beforeEach(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'smolotchi-tarball-'));
  srcTree = path.join(base, 'tree');
  sourceDir = path.join(base, 'source');
  staging = path.join(base, 'staging');
  workDir = path.join(base, 'work');
  await makeTree(srcTree);
  await fs.mkdir(sourceDir);
  await fs.mkdir(staging);
});

afterEach(async () => {
  await fs.rm(base, { recursive: true, force: true });
});

describe('directory source', () => {
  it('fetches, verifies and extracts a good archive', async () => {
    const file = await publish(sourceDir, '1.2.3');
    const fetched = await fetchTarball({ source: sourceDir, version: 'v1.2.3', stagingDir: staging, workDir });
    expect(fetched).toMatchObject({ version: '1.2.3', kind: 'tarball', source: sourceDir, sha256: await sha256File(file) });
    expect(fetched.bytes).toBeGreaterThan(3 * 1024 * 1024);
    expect(await describeTree(staging)).toEqual(await describeTree(srcTree));
    expect(await fs.readdir(workDir)).toEqual([]);
  });

  it('keeps the executable bit, never setuid, and gives 0644/0755 whatever the archive or umask says', async () => {
    await publish(sourceDir, '1.2.3');
    await fetchTarball({ source: sourceDir, version: '1.2.3', stagingDir: staging, workDir });
    const mode = async (p: string) => (await fs.stat(path.join(staging, p))).mode & 0o7777;
    expect(await mode('bin/smolotchi')).toBe(0o755);
    expect(await mode('bin/suid')).toBe(0o755);
    expect(await mode('private.cfg')).toBe(0o644);
    expect(await mode('smolotchi')).toBe(0o755);
    expect((await fs.stat(path.join(staging, 'bin/smolotchi'))).uid).toBe(process.getuid?.());
  });

  it('masks raw archive modes: 0777 file → 0755, 0600 → 0644, 0700 dir → 0755', async () => {
    const ent = (d: tar.HeaderData, body = '') => Buffer.concat([tarHeader({ ...d, size: body.length }), Buffer.from(body), pad(body.length)]);
    const raw = Buffer.concat([
      ent({ path: 'r/', type: 'Directory', mode: 0o700 }),
      ent({ path: 'r/d/', type: 'Directory', mode: 0o777 }),
      ent({ path: 'r/d/w', type: 'File', mode: 0o777 }, 'w'),
      ent({ path: 'r/p', type: 'File', mode: 0o600 }, 'p'),
      ent({ path: 'r/h', type: 'Link', linkpath: 'r/p', mode: 0o644 }),
      Buffer.alloc(1024),
    ]);
    const archive = path.join(base, 'raw.tar.gz');
    await fs.writeFile(archive, zlib.gzipSync(raw));
    const old = process.umask(0o077);
    try {
      expect(await extractTarFile(archive, staging, { gzip: true, topLevel: 'r' })).toEqual({ entries: 4, bytes: 2 });
    } finally {
      process.umask(old);
    }
    const mode = async (p: string) => (await fs.stat(path.join(staging, p))).mode & 0o7777;
    expect([await mode('d'), await mode('d/w'), await mode('p')]).toEqual([0o755, 0o755, 0o644]);
    expect((await fs.stat(path.join(staging, 'h'))).ino).toBe((await fs.stat(path.join(staging, 'p'))).ino);
  });

  it('extracts archives made by GNU tar (gnu and posix formats), never keeping their owners', async () => {
    await fs.chmod(path.join(srcTree, 'bin', 'suid'), 0o755); // GNU tar keeps setuid, which is refused
    const named = path.join(base, 'smolotchi-1.2.3');
    await fs.cp(srcTree, named, { recursive: true, verbatimSymlinks: true });
    for (const format of ['gnu', 'posix']) {
      const dir = await fs.mkdtemp(path.join(base, `gnu-${format}-`));
      const file = path.join(dir, 'smolotchi-1.2.3.tar.gz');
      await run('tar', ['-C', base, `--format=${format}`, '--owner=4242', '--group=4242', '-czf', file, 'smolotchi-1.2.3']);
      await fs.writeFile(`${file}.sha256`, `${await sha256File(file)} *smolotchi-1.2.3.tar.gz\n`);
      const out = await fs.mkdtemp(path.join(base, 'out-'));
      await fetchTarball({ source: dir, version: '1.2.3', stagingDir: out, workDir });
      expect(await describeTree(out)).toEqual(await describeTree(srcTree));
      const st = await fs.stat(path.join(out, 'smolotchi', '__init__.py'));
      expect([st.uid, st.gid]).toEqual([process.getuid?.(), process.getgid?.()]);
    }
  });

  it('ignores pax global headers, as written by git archive', async () => {
    await run('git', ['init', '-q', '-b', 'main', srcTree]);
    const git = (...args: string[]) => run('git', ['-C', srcTree, '-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args]);
    await git('add', '-A');
    await git('commit', '-q', '-m', 'release');
    const archive = path.join(base, 'git.tar');
    await git('archive', '--format=tar', '--prefix=smolotchi-1.2.3/', '-o', archive, 'HEAD');
    const result = await extractTarStream(createReadStream(archive), staging, { gzip: false, topLevel: 'smolotchi-1.2.3' });
    expect(result.entries).toBeGreaterThan(5);
    expect(await fs.readFile(path.join(staging, 'smolotchi/__init__.py'), 'utf8')).toBe('VERSION = "1.2.3"\n');
  });

  it('missing version → exit 3; bad version → exit 2; missing source dir → exit 3', async () => {
    await publish(sourceDir, '1.2.3');
    expect((await exitCodeOf(fetchTarball({ source: sourceDir, version: '9.9.9', stagingDir: staging, workDir }))).code).toBe(3);
    expect((await exitCodeOf(fetchTarball({ source: sourceDir, version: '../1.2.3', stagingDir: staging, workDir }))).code).toBe(2);
    expect((await exitCodeOf(fetchTarball({ source: path.join(base, 'nope'), version: '1.2.3', stagingDir: staging, workDir }))).code).toBe(3);
  });

  it('lists versions from archive names, ignoring junk', async () => {
    for (const v of ['1.2.3', '1.10.0', '2.0.0-rc.1']) await publish(sourceDir, v);
    for (const junk of ['smolotchi-v3.0.0.tar.gz', 'smolotchi-1.0.tar.gz', 'smolotchi-4.0.0.tar.gz.sha256', 'other-5.0.0.tar.gz', 'smolotchi-6.0.0.tgz', 'smolotchi-01.0.0.tar.gz']) {
      await fs.writeFile(path.join(sourceDir, junk), 'junk');
    }
    await fs.mkdir(path.join(sourceDir, 'smolotchi-7.0.0.tar.gz'));
    expect(await listTarballVersions(sourceDir)).toEqual(['1.2.3', '1.10.0', '2.0.0-rc.1']);
  });

  it('tells tarball sources from git ones by their text where it can', async () => {
    const kind = (s: string, setting?: 'git' | 'tarball') => kindFromText(s, setting).kind;
    expect(kind(sourceDir)).toBe('git');
    await publish(sourceDir, '1.2.3');
    expect(kind(sourceDir)).toBe('tarball');
    expect(kind(path.join(base, 'missing'))).toBe('git');
    expect(kind('git@github.com:161sam/smolotchi.git')).toBe('git');
    expect(kind('https://github.com/161sam/smolotchi.git')).toBe('git');
    expect(kind('ssh://git@example.invalid/app')).toBe('git');
    // An http(s) URL that says nothing is asked whether it speaks git (source-kinds.test.ts).
    expect(kind('https://example.invalid/releases')).toBe(null);
    expect(kind('http://example.invalid/releases/')).toBe(null);
    expect(kindFromText('git+https://example.invalid/app')).toEqual({ kind: 'git', source: 'https://example.invalid/app' });
    expect(kind('https://example.invalid/app.git', 'tarball')).toBe('tarball');
  });
});

describe('install from a file', () => {
  it('takes the version from the name and requires the .sha256 beside it', async () => {
    const file = await publish(sourceDir, '1.2.3');
    const fetched = await fetchTarballFile({ file, stagingDir: staging, workDir });
    expect(fetched).toMatchObject({ version: '1.2.3', kind: 'tarball', source: file });
    expect(await describeTree(staging)).toEqual(await describeTree(srcTree));

    await fs.rm(`${file}.sha256`);
    const missing = await exitCodeOf(fetchTarballFile({ file, stagingDir: await fs.mkdtemp(path.join(base, 's-')), workDir }));
    expect(missing.code).toBe(4);
    expect(missing.message).toMatch(/missing checksum/);
  });

  it('refuses names that are not smolotchi-<semver>.tar.gz (exit 2) and missing files (exit 3)', async () => {
    for (const name of ['release.tar.gz', 'smolotchi-v1.2.3.tar.gz', 'smolotchi-1.2.tar.gz', 'smolotchi-1.2.3.tgz', 'smolotchi-1.2.3;rm.tar.gz']) {
      expect((await exitCodeOf(fetchTarballFile({ file: path.join(sourceDir, name), stagingDir: staging, workDir }))).code).toBe(2);
    }
    expect((await exitCodeOf(fetchTarballFile({ file: path.join(sourceDir, 'smolotchi-1.2.3.tar.gz'), stagingDir: staging, workDir }))).code).toBe(3);
  });
});

describe('checksum files', () => {
  const name = 'smolotchi-1.2.3.tar.gz';
  const hex = 'ab'.repeat(32);
  it('accepts sha256sum text, binary marker, bare hex and upper case', () => {
    expect(parseChecksum(`${hex}  ${name}\n`, name)).toBe(hex);
    expect(parseChecksum(`${hex} *${name}\n`, name)).toBe(hex);
    expect(parseChecksum(`${hex}\n`, name)).toBe(hex);
    expect(parseChecksum(hex.toUpperCase(), name)).toBe(hex);
  });
  it('refuses anything else', () => {
    for (const bad of ['', 'ab', `${hex}  other.tar.gz`, `${hex}  ${name}\n${hex}  ${name}\n`, `${hex}x`, `sha256:${hex}`, `${hex}\t${name}`, ` ${hex}`, `${hex}  ./${name}`]) {
      expect(() => parseChecksum(bad, name), JSON.stringify(bad)).toThrow(expect.objectContaining({ exitCode: 4 }));
    }
  });
});

describe('http source', () => {
  let server: http.Server;
  let url: string;
  let served: string;

  beforeAll(async () => {
    served = await fs.mkdtemp(path.join(os.tmpdir(), 'smolotchi-http-'));
    server = http.createServer((req, res) => {
      const name = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.replace(/^\/releases\//, ''));
      if (name.includes('/')) return void res.writeHead(404).end();
      fs.readFile(path.join(served, name)).then(
        (body) => res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body),
        () => res.writeHead(404).end('not found'),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/releases`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await fs.rm(served, { recursive: true, force: true });
  });

  it('downloads, verifies and extracts', async () => {
    const file = await publish(served, '1.2.3');
    const fetched = await fetchTarball({ source: url, version: '1.2.3', stagingDir: staging, workDir });
    expect(fetched).toMatchObject({ version: '1.2.3', kind: 'tarball', source: url, sha256: await sha256File(file) });
    expect(await describeTree(staging)).toEqual(await describeTree(srcTree));
    expect(await fs.readdir(workDir)).toEqual([]);
  });

  it('404 → exit 3; archive without checksum → exit 4; tampered → exit 4', async () => {
    expect((await exitCodeOf(fetchTarball({ source: `${url}/`, version: '8.8.8', stagingDir: staging, workDir }))).code).toBe(3);
    const file = await publish(served, '2.0.0');
    await fs.rm(`${file}.sha256`);
    const missing = await exitCodeOf(fetchTarball({ source: url, version: '2.0.0', stagingDir: staging, workDir }));
    expect(missing).toMatchObject({ code: 4, message: expect.stringMatching(/missing checksum/) });
    await fs.writeFile(`${file}.sha256`, `${'0'.repeat(64)}  smolotchi-2.0.0.tar.gz\n`);
    const wrong = await exitCodeOf(fetchTarball({ source: url, version: '2.0.0', stagingDir: staging, workDir }));
    expect(wrong).toMatchObject({ code: 4, message: expect.stringMatching(/checksum mismatch/) });
    expect(await fs.readdir(staging)).toEqual([]);
  });

  it('refuses credentials in the URL without echoing them', async () => {
    const withCreds = url.replace('http://', 'http://user:s3cret-pw@');
    const res = await exitCodeOf(fetchTarball({ source: withCreds, version: '1.2.3', stagingDir: staging, workDir }));
    expect(res.code).toBe(2);
    expect(res.message).not.toContain('s3cret-pw');
  });

  it('an unreachable server is a plain failure (exit 1), not a crash', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    expect((await exitCodeOf(fetchTarball({ source: `http://127.0.0.1:${port}/r`, version: '1.2.3', stagingDir: staging, workDir }))).code).toBe(1);
  });
});

describe('createTarGz and the private copy', () => {
  it('is deterministic: same tree → same bytes, whatever the mtimes', async () => {
    const a = path.join(base, 'a.tar.gz');
    const b = path.join(base, 'b.tar.gz');
    await createTarGz(srcTree, a, 'smolotchi-1.2.3');
    const later = new Date('2030-01-01T00:00:00Z');
    await fs.utimes(path.join(srcTree, 'smolotchi', '__init__.py'), later, later);
    await createTarGz(srcTree, b, 'smolotchi-1.2.3');
    expect(sha(await fs.readFile(a))).toBe(sha(await fs.readFile(b)));
    const names: string[] = [];
    const owners = new Set<string>();
    await tar.t({ file: a, onReadEntry: (e) => (names.push(e.path), owners.add(`${e.uid}:${e.gid}:${e.uname ?? ''}:${e.gname ?? ''}`)) });
    expect(names).toEqual([...names].sort());
    expect([...owners]).toEqual(['0:0::']);
  });

  it('extracts the verified private copy, not the original that changed afterwards', async () => {
    const original = await publish(sourceDir, '1.2.3');
    const privateCopy = path.join(base, 'private.tar.gz');
    const hash = await copyAndHash(original, privateCopy);
    expect(hash).toBe(await sha256File(original));
    expect((await fs.stat(privateCopy)).mode & 0o777).toBe(0o600);
    // Swap the original for a different release after verification.
    const evilTree = path.join(base, 'evil');
    await fs.mkdir(evilTree);
    await fs.writeFile(path.join(evilTree, 'payload.py'), 'import os; os.system("evil")\n');
    await createTarGz(evilTree, original, 'smolotchi-1.2.3');
    expect(await sha256File(original)).not.toBe(hash);
    await extractTarFile(privateCopy, staging, { gzip: true, topLevel: 'smolotchi-1.2.3' });
    expect(await describeTree(staging)).toEqual(await describeTree(srcTree));
    expect(await sha256File(privateCopy)).toBe(hash);
    // The private copy is created exclusively: an existing file (or planted symlink) there is refused.
    await expect(copyAndHash(original, privateCopy)).rejects.toThrow(/EEXIST/);
  });
});
