import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import * as tar from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tarHeader } from '../../src/adapters/tar.js';
import type { ExtractLimits } from '../../src/adapters/archive-policy.js';
import { ReleaseError } from '../../src/core/errors.js';
import { fetchTarball } from '../../src/core/build/sources/tarball.js';

/**
 * Every archive here is hostile and carries a correct .sha256, so the archive checks (not the
 * checksum) must refuse it: exit 4, a message naming the problem, and nothing outside staging
 * touched: not the canary outside the fake root, not the sibling release.
 */

const T = 'smolotchi-1.0.0';
const ARCHIVE = `${T}.tar.gz`;

interface Raw {
  path: string;
  type?: tar.HeaderData['type'];
  body?: Buffer | string;
  linkpath?: string;
  mode?: number;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

function entry(e: Raw): Buffer {
  const body = Buffer.from(e.body ?? '');
  const header = tarHeader({ path: e.path, type: e.type ?? 'File', size: body.length, linkpath: e.linkpath, mode: e.mode ?? 0o644 });
  return Buffer.concat([header, body, pad(body.length)]);
}

const EOF = Buffer.alloc(1024);
const tarOf = (...entries: (Raw | Buffer)[]) => Buffer.concat([...entries.map((e) => (Buffer.isBuffer(e) ? e : entry(e))), EOF]);
const gz = (buf: Buffer) => zlib.gzipSync(buf);
const top: Raw = { path: `${T}/`, type: 'Directory', mode: 0o755 };
const goodTar = () => tarOf(top, { path: `${T}/app.py`, body: 'print("hi")\n'.repeat(200) }, { path: `${T}/README`, body: 'x'.repeat(5000) });

let base: string;
let sourceDir: string;
let staging: string;
let workDir: string;

async function snapshot(dir: string, skip: string[]): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string): Promise<void> {
    for (const name of (await fs.readdir(d)).sort()) {
      const p = path.join(d, name);
      if (skip.includes(p)) continue;
      const st = await fs.lstat(p);
      const content = st.isFile() ? createHash('sha256').update(await fs.readFile(p)).digest('hex') : st.isSymbolicLink() ? await fs.readlink(p) : '';
      out.push(`${path.relative(base, p)} ${st.mode.toString(8)} ${st.mtimeMs} ${st.size} ${content}`);
      if (st.isDirectory()) await walk(p);
    }
  }
  await walk(dir);
  return out;
}

beforeEach(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'smolotchi-hostile-'));
  sourceDir = path.join(base, 'source');
  const root = path.join(base, 'root');
  const opt = path.join(root, 'opt', 'smolotchi');
  staging = path.join(opt, '.staging', '1.0.0.test');
  workDir = path.join(opt, '.staging', '1.0.0.test.work');
  const other = path.join(opt, 'releases', '1.1.0');
  await fs.mkdir(sourceDir, { recursive: true });
  await fs.mkdir(staging, { recursive: true });
  await fs.mkdir(workDir, { recursive: true, mode: 0o700 });
  await fs.mkdir(path.join(other, 'smolotchi'), { recursive: true });
  await fs.writeFile(path.join(other, 'smolotchi', '__init__.py'), 'VERSION = "1.1.0"\n');
  await fs.writeFile(path.join(base, 'canary.txt'), 'canary: must never change\n');
  const past = new Date('2001-02-03T04:05:06Z');
  for (const p of [path.join(base, 'canary.txt'), path.join(other, 'smolotchi', '__init__.py')]) await fs.utimes(p, past, past);
});

afterEach(async () => {
  await fs.chmod(base, 0o755).catch(() => undefined);
  await fs.rm(base, { recursive: true, force: true });
});

type Checksum = 'ok' | 'wrong' | 'missing';

async function expectRefused(archive: Buffer, pattern: RegExp, opts: { checksum?: Checksum; limits?: Partial<ExtractLimits> } = {}) {
  await fs.writeFile(path.join(sourceDir, ARCHIVE), archive);
  const checksum = opts.checksum ?? 'ok';
  if (checksum !== 'missing') {
    const hash = createHash('sha256').update(checksum === 'ok' ? archive : Buffer.concat([archive, Buffer.from('x')])).digest('hex');
    await fs.writeFile(path.join(sourceDir, `${ARCHIVE}.sha256`), `${hash}  ${ARCHIVE}\n`);
  }
  const before = await snapshot(base, [staging, workDir]);
  let caught: unknown;
  try {
    await fetchTarball({ source: sourceDir, version: '1.0.0', stagingDir: staging, workDir, limits: opts.limits });
  } catch (err) {
    caught = err;
  }
  expect(caught, 'extraction must be refused').toBeInstanceOf(ReleaseError);
  const err = caught as ReleaseError;
  expect(err.exitCode).toBe(4);
  expect(err.message).toMatch(pattern);
  expect(err.message).not.toContain('\n');
  // Everything outside staging (canary, sibling release, source, fake root) is byte- and mtime-identical.
  expect(await snapshot(base, [staging, workDir])).toEqual(before);
  // The private download copy never outlives the fetch.
  expect(await fs.readdir(workDir).catch(() => [])).toEqual([]);
}

describe('hostile archives are refused with exit 4 and nothing outside staging changes', () => {
  it('absolute path', async () => {
    await expectRefused(gz(tarOf(top, { path: path.join(base, 'abs-escape.txt'), body: 'pwned' })), /absolute path/);
  });
  it('.. at the start', async () => {
    await expectRefused(gz(tarOf({ path: '../../../../canary.txt', body: 'pwned' })), /'\.\.' in path/);
  });
  it('.. in the middle', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/a/../../../../../canary.txt`, body: 'pwned' })), /'\.\.' in path/);
  });
  it('symlink with an absolute target', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/etc`, type: 'SymbolicLink', linkpath: base })), /symlink to absolute path/);
  });
  it('symlink climbing out of the tree', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/sub/up`, type: 'SymbolicLink', linkpath: '../../..' })), /climbs out/);
  });
  it("symlink chain: '..' after a name that is itself a symlink", async () => {
    const a = tarOf(top, { path: `${T}/sub/l1`, type: 'SymbolicLink', linkpath: '..' }, { path: `${T}/sub/l2`, type: 'SymbolicLink', linkpath: 'l1/../..' });
    await expectRefused(gz(a), /'\.\.' after a name/);
  });
  it('write through an in-archive symlink (symlink dir, then a file under it)', async () => {
    const a = tarOf(top, { path: `${T}/sub/`, type: 'Directory' }, { path: `${T}/link`, type: 'SymbolicLink', linkpath: 'sub' }, { path: `${T}/link/x.py`, body: 'pwned' });
    await expectRefused(gz(a), /writes through the symlink/);
  });
  it('hardlink to a file outside the tree', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/h`, type: 'Link', linkpath: `${T}/../../../canary.txt` })), /'\.\.' in hardlink target/);
  });
  it('hardlink with an absolute target', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/h`, type: 'Link', linkpath: path.join(base, 'canary.txt') })), /absolute hardlink target/);
  });
  it('hardlink to a symlink', async () => {
    const a = tarOf(top, { path: `${T}/s`, type: 'SymbolicLink', linkpath: 'app.py' }, { path: `${T}/h`, type: 'Link', linkpath: `${T}/s` });
    await expectRefused(gz(a), /hardlink to a symlink/);
  });
  it('hardlink to a missing file', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/h`, type: 'Link', linkpath: `${T}/nothere` })), /hardlink to "nothere", which is missing/);
  });
  it('hardlink into another release folder', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/h`, type: 'Link', linkpath: 'smolotchi-1.1.0/app.py' })), /hardlink target outside the top-level folder/);
  });
  it('character device', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/tty`, type: 'CharacterDevice' })), /character device not allowed/);
  });
  it('block device', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/sda`, type: 'BlockDevice' })), /block device not allowed/);
  });
  it('FIFO', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/pipe`, type: 'FIFO' })), /FIFO/);
  });
  it('unknown entry type (GNU dump dir)', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/dump`, type: 'GNUDumpDir' })), /unsupported entry type/);
  });
  it('setuid file', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/bin/su`, body: '#!/bin/sh\n', mode: 0o4755 })), /setuid/);
  });
  it('setgid file', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/bin/sg`, body: '#!/bin/sh\n', mode: 0o2755 })), /setgid/);
  });
  it('sticky directory', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/tmp/`, type: 'Directory', mode: 0o1777 })), /sticky/);
  });
  it('duplicate entry', async () => {
    const a = tarOf(top, { path: `${T}/app.py`, body: 'good' }, { path: `./${T}//app.py`, body: 'evil' });
    await expectRefused(gz(a), /duplicate entry/);
  });
  it('path too long', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/${'a'.repeat(200)}/${'b'.repeat(5000)}`, body: 'x' })), /path too long/);
  });
  it('path too deep', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/${'d/'.repeat(80)}f`, body: 'x' })), /too deep/);
  });
  it('control character in a name', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/evil\u001b[31mred`, body: 'x' })), /control character in path/);
  });
  it('newline in a name', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/evil\nname`, body: 'x' })), /control character in path/);
  });
  it('right-to-left override in a name (evil\u202Egnp.py reads as evilyp.png)', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/evil\u202egnp.py`, body: 'x' })), /bidi or zero-width character in path/);
  });
  it('left-to-right and right-to-left isolates in a name', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/smolotchi/\u2066cli\u2069.py`, body: 'x' })), /bidi or zero-width character in path/);
  });
  it('zero-width space in a name (setup\u200B.py beside setup.py)', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/setup\u200b.py`, body: 'x' })), /bidi or zero-width character in path/);
  });
  it('zero-width joiner in a directory name', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/smolo\u200dtchi/`, type: 'Directory' })), /bidi or zero-width character in path/);
  });
  it('byte order mark at the start of a name', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/\ufeffrequirements.txt`, body: 'x' })), /bidi or zero-width character in path/);
  });
  it('bidi override in a symlink target', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/link`, type: 'SymbolicLink', linkpath: 'a\u202eb' })), /bidi or zero-width character in symlink target/);
  });
  it('backslash in a name', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/..\\..\\canary.txt`, body: 'x' })), /backslash in path/);
  });
  it('too many entries', async () => {
    const files = Array.from({ length: 30 }, (_, i) => ({ path: `${T}/f${i}`, body: String(i) }));
    await expectRefused(gz(tarOf(top, ...files)), /too many entries/, { limits: { maxEntries: 10 } });
  });
  it('decompression bomb: 64 MiB of zeros in a tiny gzip, total limit 1 MiB', async () => {
    const bomb = gz(tarOf(top, { path: `${T}/zeros`, body: Buffer.alloc(64 * 1024 * 1024) }));
    expect(bomb.length).toBeLessThan(200 * 1024);
    await expectRefused(bomb, /total size over the limit/, { limits: { maxTotalBytes: 1024 * 1024 } });
  });
  it('many small files adding up over the total limit', async () => {
    const files = Array.from({ length: 8 }, (_, i) => ({ path: `${T}/z${i}`, body: Buffer.alloc(200 * 1024) }));
    await expectRefused(gz(tarOf(top, ...files)), /total size over the limit/, { limits: { maxTotalBytes: 1024 * 1024 } });
  });
  it('file over the per-file limit', async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/big`, body: Buffer.alloc(300 * 1024) })), /file too large/, { limits: { maxFileBytes: 100 * 1024 } });
  });
  it('junk after the end-of-archive marker (zero tail bomb)', async () => {
    await expectRefused(gz(Buffer.concat([goodTar(), Buffer.alloc(8 * 1024 * 1024)])), /after the end-of-archive marker/);
  });
  it('truncated gzip', async () => {
    const whole = gz(goodTar());
    await expectRefused(whole.subarray(0, Math.floor(whole.length / 2)), /gzip/);
  });
  it('corrupt gzip', async () => {
    const bad = Buffer.from(gz(goodTar()));
    for (let i = 20; i < 60; i++) bad[i] = bad[i]! ^ 0x5a;
    await expectRefused(bad, /gzip/);
  });
  it('not gzip at all', async () => {
    await expectRefused(Buffer.from('<html>this is an error page</html>\n'.repeat(40)), /gzip/);
  });
  it('gzip inside gzip', async () => {
    await expectRefused(gz(gz(goodTar())), /compressed twice/);
  });
  it('tar truncated in the middle of a file', async () => {
    await expectRefused(gz(goodTar().subarray(0, 512 * 3 + 100)), /truncated|Truncated/);
  });
  it('tar without an end-of-archive marker', async () => {
    await expectRefused(gz(goodTar().subarray(0, goodTar().length - 1024)), /no end-of-archive marker/);
  });
  it('corrupt tar header checksum', async () => {
    const t = Buffer.from(goodTar());
    t[512 + 10] = 0x41; // a byte of the second header's name: its checksum no longer matches
    await expectRefused(gz(t), /corrupt tar archive/);
  });
  it('pax header overriding a harmless name with an escaping one', async () => {
    const pax = new tar.Pax({ path: `${T}/../../../canary.txt` }).encode();
    await expectRefused(gz(tarOf(top, pax, { path: `${T}/harmless.txt`, body: 'pwned' })), /'\.\.' in path/);
  });
  it('oversized pax header', async () => {
    const pax = new tar.Pax({ path: `${T}/x`, comment: 'c'.repeat(100 * 1024) }).encode();
    await expectRefused(gz(tarOf(top, pax, { path: `${T}/x`, body: 'x' })), /metadata header over/);
  });
  it('wrong checksum', async () => {
    await expectRefused(gz(goodTar()), /checksum mismatch/, { checksum: 'wrong' });
  });
  it('missing checksum', async () => {
    await expectRefused(gz(goodTar()), /missing checksum/, { checksum: 'missing' });
  });
  it("file targeting another release's folder via .. (smolotchi-1.0.0/../1.1.0/x)", async () => {
    await expectRefused(gz(tarOf(top, { path: `${T}/../1.1.0/x`, body: 'pwned' })), /'\.\.' in path/);
    await expectRefused(gz(tarOf(top, { path: `${T}/../../releases/1.1.0/smolotchi/__init__.py`, body: 'pwned' })), /'\.\.' in path/);
  });
  it('file in a second top-level folder named like another release (smolotchi-1.1.0/x)', async () => {
    await expectRefused(gz(tarOf(top, { path: 'smolotchi-1.1.0/x', body: 'pwned' })), /outside the top-level folder smolotchi-1\.0\.0\//);
  });
  it('second top-level folder', async () => {
    const a = tarOf(top, { path: `${T}/app.py`, body: 'ok' }, { path: 'extra/', type: 'Directory' }, { path: 'extra/x', body: 'pwned' });
    await expectRefused(gz(a), /outside the top-level folder/);
  });
  it('a top-level folder that only starts with the expected name', async () => {
    await expectRefused(gz(tarOf({ path: `${T}-evil/x`, body: 'pwned' })), /outside the top-level folder/);
  });
  it('symlink as the top-level folder, then files through it', async () => {
    await expectRefused(gz(tarOf({ path: T, type: 'SymbolicLink', linkpath: '../../releases/1.1.0' }, { path: `${T}/x`, body: 'pwned' })), /names the release root/);
  });
  it('archive holding only its top-level folder', async () => {
    await expectRefused(gz(tarOf(top)), /no files/);
  });
  it('archive with no entries at all', async () => {
    await expectRefused(gz(EOF), /Unrecognized archive format/);
  });
});
