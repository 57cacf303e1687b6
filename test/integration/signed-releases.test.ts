import { createHash, generateKeyPairSync } from 'node:crypto';
import {
  chmodSync, chownSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleRepo } from '../../scripts/sample-app.js';
import { canonicalBytes } from '../../src/core/trust/canonical-json.js';
import { generateSigningKey, parsePrivateKey, signManifest } from '../../src/core/trust/signing.js';
import { runCli, writeEnvFile } from '../support/cli.js';
import { makeFakeSystemctl } from '../support/fake-systemctl.js';
import {
  checksumLine, names, publish, readRelease, repack, resign, sha256, signerFromFile, treeState, type ReleaseFiles, type Signer,
} from '../support/signed-release.js';

/**
 * Signed releases end to end through the built CLI: keygen, pack, install from a folder, a file
 * and a URL, verify; and every way an artifact can be forged, refused with exit 4 while
 * `current`, the units, the other releases and a canary outside the root stay exactly as they were.
 */

let work: string;
let keyFile: string;
let pubFile: string;
let pub: string;
let signer: Signer;
let good: ReleaseFiles;
let other: ReleaseFiles;
let canary: string;

const cli = (...args: string[]) => runCli(['release', ...args]);

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-signed-'));
  canary = path.join(work, 'canary.txt');
  writeFileSync(canary, 'must never change\n');
  const { repo } = await createSampleRepo(path.join(work, 'app'), [{ version: '1.0.0' }, { version: '1.1.0', extraUnits: true }]);
  const kg = await cli('keygen', '--out', path.join(work, 'keys'), '--json');
  expect(kg.exitCode).toBe(0);
  ({ privateKey: keyFile, publicKey: pubFile } = kg.json<{ privateKey: string; publicKey: string }>());
  pub = path.join(work, 'pub');
  for (const v of ['1.0.0', '1.1.0']) expect((await cli('pack', '--repo', repo, '--version', v, '--key', keyFile, '--out', pub)).exitCode).toBe(0);
  signer = signerFromFile(keyFile);
  good = readRelease(pub, '1.1.0');
  other = readRelease(pub, '1.0.0');
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A sandbox root whose keys folder trusts the packing key; settle 0, recording systemctl. */
function device(name: string) {
  const root = path.join(work, name);
  writeEnvFile(root, { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 0 });
  const keys = path.join(root, 'etc/smolotchi/keys');
  mkdirSync(keys, { recursive: true, mode: 0o755 });
  // Explicit modes: under a umask of 002 the folders would be group-writable, and rightly refused.
  for (const d of [keys, path.dirname(keys)]) chmodSync(d, 0o755);
  writeKey(path.join(keys, path.basename(pubFile)), readFileSync(pubFile));
  const fake = makeFakeSystemctl(mkdtempSync(path.join(work, `${name}-fake-`)));
  const run = (...args: string[]) => runCli(['release', ...args, '--root', root, '--systemctl', fake.path]);
  return { root, keys, run };
}

function writeKey(file: string, content: string | Buffer): void {
  writeFileSync(file, content);
  chmodSync(file, 0o644);
}

const currentOf = (root: string) => readlinkSync(path.join(root, 'opt/smolotchi/current'));

describe('keygen and pack', () => {
  it('keygen writes an ed25519 pair named by its key id: private 0600, public 0644', () => {
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(pubFile).mode & 0o777).toBe(0o644);
    expect(path.basename(keyFile)).toBe(`smolotchi-${signer.keyId}.key`);
    expect(readFileSync(pubFile, 'utf8')).toContain('BEGIN PUBLIC KEY');
  });

  it('pack is deterministic: the same tag and key give the same bytes, file by file', async () => {
    const again = path.join(work, 'pub-again');
    const repo = path.join(work, 'app');
    expect((await cli('pack', '--repo', repo, '--version', '1.1.0', '--key', keyFile, '--out', again)).exitCode).toBe(0);
    const files = readdirSync(again).sort();
    expect(files).toEqual(Object.values(names('1.1.0')).concat(`${names('1.1.0').archive}.sha256`).sort());
    for (const f of files) expect(sha256(readFileSync(path.join(again, f))), f).toBe(sha256(readFileSync(path.join(pub, f))));
  });

  it('the manifest lists the tree with modes, the unit templates and the commit; the .sha256 is sha256sum format', () => {
    const m = JSON.parse(good.manifest!.toString()) as { version: string; commit: string; files: { path: string; mode?: number }[]; units: Record<string, string> };
    expect(m.version).toBe('1.1.0');
    expect(m.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(m.files.find((f) => f.path === 'smolotchi/cli.py')).toMatchObject({ mode: 0o644 });
    expect(Object.keys(m.units)).toContain('smolotchi-core.service');
    expect(good.checksum).toBe(checksumLine(good.archive, '1.1.0'));
  });

  it('pack refuses a private key readable by group or others (exit 4)', async () => {
    const loose = path.join(work, 'loose.key');
    copyFileSync(keyFile, loose);
    chmodSync(loose, 0o644);
    const r = await cli('pack', '--repo', path.join(work, 'app'), '--version', '1.0.0', '--key', loose, '--out', path.join(work, 'never'));
    expect(r.exitCode).toBe(4);
    expect(r.stderr).toContain('group or others');
    expect(existsSync(path.join(work, 'never'))).toBe(false);
  });
});

describe('installing signed releases', () => {
  let dev: ReturnType<typeof device>;
  beforeAll(() => {
    dev = device('happy');
  });

  it('installs from a folder source, then from ./file; stamps record the signing key', async () => {
    const r1 = await dev.run('install', '1.0.0', '--source', pub);
    expect(r1.exitCode, r1.stderr).toBe(0);
    const r2 = await dev.run('install', path.join(pub, names('1.1.0').archive));
    expect(r2.exitCode, r2.stderr).toBe(0);
    expect(currentOf(dev.root)).toBe('releases/1.1.0');
    const stamp = JSON.parse(readFileSync(path.join(dev.root, 'opt/smolotchi/releases/1.1.0/.smolotchi-release.json'), 'utf8'));
    expect(stamp).toMatchObject({ signedBy: signer.keyId, filesHash: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it('releases and venvs are not writable by group/others; releases.db and its WAL are 0640', () => {
    const loose: string[] = [];
    const walk = (p: string) => {
      const st = lstatSync(p);
      if (!st.isSymbolicLink() && st.mode & 0o022) loose.push(p);
      if (st.isDirectory()) for (const n of readdirSync(p)) walk(path.join(p, n));
    };
    walk(path.join(dev.root, 'opt/smolotchi/releases'));
    expect(loose).toEqual([]);
    for (const f of ['releases.db', 'releases.db-wal', 'releases.db-shm']) {
      const file = path.join(dev.root, 'var/lib/smolotchi/release', f);
      if (existsSync(file)) expect(statSync(file).mode & 0o777, f).toBe(0o640);
    }
  });

  it('verify --all is clean; a tampered, a removed and an added file are named (exit 4)', async () => {
    const ok = await dev.run('verify', '--all');
    expect(ok.exitCode, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`1.1.0: ok`);
    const rel = path.join(dev.root, 'opt/smolotchi/releases/1.1.0');
    writeFileSync(path.join(rel, 'smolotchi/cli.py'), readFileSync(path.join(rel, 'smolotchi/cli.py'), 'utf8').replace('import', 'import  '));
    unlinkSync(path.join(rel, 'README.md'));
    writeFileSync(path.join(rel, 'smolotchi/backdoor.py'), 'print("hi")\n');
    writeFileSync(path.join(rel, 'smolotchi/__pycache__/evil.cpython-311.pyc'), 'x'); // bytecode with no source
    const bad = await dev.run('verify', '--json');
    expect(bad.exitCode).toBe(4);
    const [check] = bad.json<{ releases: { version: string; status: string; modified: string[]; missing: string[]; added: string[] }[] }>().releases;
    expect(check).toMatchObject({ version: '1.1.0', status: 'tampered', modified: ['smolotchi/cli.py'], missing: ['README.md'] });
    expect(check!.added).toEqual(['smolotchi/__pycache__/evil.cpython-311.pyc', 'smolotchi/backdoor.py']);
    const text = await dev.run('verify', '1.1.0');
    expect(text.exitCode).toBe(4);
    expect(text.stdout).toContain('modified: smolotchi/cli.py');
    expect((await dev.run('verify', '1.0.0')).exitCode).toBe(0);
  });

  it('verify flags a venv made writable by others, and a file list edited along with its release', async () => {
    const rel = path.join(dev.root, 'opt/smolotchi/releases/1.0.0');
    chmodSync(path.join(rel, '.venv/pyvenv.cfg'), 0o666);
    const r = await dev.run('verify', '1.0.0');
    expect(r.exitCode).toBe(4);
    expect(r.stdout).toContain('.venv/pyvenv.cfg is writable by group or others');
    chmodSync(path.join(rel, '.venv/pyvenv.cfg'), 0o644);
    const list = path.join(rel, '.smolotchi-files.json');
    writeFileSync(list, readFileSync(list, 'utf8').replace('"size":', '"size":1'));
    const edited = await dev.run('verify', '1.0.0');
    expect(edited.exitCode).toBe(4);
    expect(edited.stdout).toContain('hash differs from the one in the stamp');
  });

  it('installs from an http URL source too; a forged manifest there is refused', async () => {
    const d = device('url');
    const genuine = await serve(pub);
    const forged = await serve(publish(path.join(work, 'url-forged'), { ...good, manifest: flipByte(good.manifest!, 40) }));
    try {
      const r = await d.run('install', '1.0.0', '--source', genuine.url);
      expect(r.exitCode, r.stderr).toBe(0);
      const before = treeState(d.root, [canary]);
      const refused = await d.run('install', '1.1.0', '--source', forged.url);
      expect(refused.exitCode).toBe(4);
      expect(refused.stderr).toContain('bad signature');
      expect(treeState(d.root, [canary])).toEqual(before);
    } finally {
      genuine.close();
      forged.close();
    }
  });
});

/** A static file server for one folder on 127.0.0.1 (a URL tarball source). */
async function serve(dir: string): Promise<{ url: string; close: () => void }> {
  const server = http.createServer((req, res) => {
    const file = path.join(dir, path.basename(req.url ?? ''));
    if (!existsSync(file)) return void res.writeHead(404).end();
    res.writeHead(200).end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, close: () => server.close() };
}

function flipByte(b: Buffer, at: number): Buffer {
  const copy = Buffer.from(b);
  const i = at < 0 ? copy.length + at : at;
  copy[i] = copy[i]! ^ 0x01;
  return copy;
}

/** The signature file with its raw signature bytes changed by `edit`, re-encoded canonically. */
function editSignature(sig: Buffer, edit: (raw: Buffer) => Buffer, keyId?: string): Buffer {
  const s = JSON.parse(sig.toString()) as { keyId: string; signature: string };
  return canonicalBytes({ ...s, keyId: keyId ?? s.keyId, signature: edit(Buffer.from(s.signature, 'base64')).toString('base64') });
}

describe('forged, damaged and unsigned artifacts are refused with exit 4, and nothing changes', () => {
  let dev: ReturnType<typeof device>;
  let stranger: Signer;
  let n = 0;

  beforeAll(async () => {
    dev = device('hostile');
    const r = await dev.run('install', '1.0.0', '--source', pub);
    expect(r.exitCode, r.stderr).toBe(0);
    const k = generateSigningKey();
    const { key, keyId } = parsePrivateKey(k.privatePem, 'stranger');
    stranger = { keyId, sign: (m) => signManifest(m, key, keyId) };
  });

  async function refused(files: ReleaseFiles | (() => Promise<ReleaseFiles>), pattern: RegExp, opts: { file?: boolean; setup?: () => void; undo?: () => void } = {}) {
    const release = typeof files === 'function' ? await files() : files;
    const src = publish(path.join(work, `case-${++n}`), release);
    opts.setup?.();
    try {
      const before = treeState(dev.root, [canary]);
      const r = opts.file ? await dev.run('install', path.join(src, names(release.version).archive)) : await dev.run('install', release.version, '--source', src);
      expect(r.exitCode, r.stderr).toBe(4);
      expect(r.stderr).toMatch(pattern);
      expect(treeState(dev.root, [canary])).toEqual(before);
      expect(currentOf(dev.root)).toBe('releases/1.0.0');
      expect(existsSync(path.join(dev.root, 'opt/smolotchi/releases/1.1.0'))).toBe(false);
    } finally {
      opts.undo?.();
    }
  }

  it('a byte flipped in the payload (its .sha256 fixed up: only the signature can tell)', async () => {
    const archive = flipByte(good.archive, 200);
    await refused({ ...good, archive, checksum: checksumLine(archive, '1.1.0') }, /does not match its signed manifest/);
  });
  it('a byte flipped in the payload, .sha256 left alone', async () => {
    await refused({ ...good, archive: flipByte(good.archive, -30) }, /checksum mismatch/);
  });
  it('a byte flipped in the manifest', async () => {
    await refused({ ...good, manifest: flipByte(good.manifest!, 100) }, /bad signature/);
  });
  it('a bit flipped in the signature', async () => {
    await refused({ ...good, signature: editSignature(good.signature!, (s) => flipByte(s, 7)) }, /bad signature/);
  });
  it('a byte flipped in the signature file itself', async () => {
    await refused({ ...good, signature: flipByte(good.signature!, 10) }, /signature file refused/);
  });
  it('a truncated signature (32 of 64 bytes)', async () => {
    await refused({ ...good, signature: editSignature(good.signature!, (s) => s.subarray(0, 32)) }, /not 64 bytes/);
  });
  it('a truncated signature file', async () => {
    await refused({ ...good, signature: good.signature!.subarray(0, 60) }, /signature file refused/);
  });
  it('an empty signature file', async () => {
    await refused({ ...good, signature: Buffer.alloc(0) }, /signature file refused: empty/);
  });
  it('a garbage signature file', async () => {
    await refused({ ...good, signature: Buffer.from(createHash('sha512').update('garbage').digest()) }, /signature file refused/);
  });
  it('signed by a key this device does not know', async () => {
    await refused(resign(good, stranger, () => {}), /unknown key/);
  });
  it('naming a trusted key id but signed by another key', async () => {
    const forged = resign(good, stranger, () => {});
    await refused({ ...forged, signature: editSignature(forged.signature!, (s) => s, signer.keyId) }, /bad signature/);
  });
  it('signed by a revoked key', async () => {
    const revoked = path.join(dev.keys, 'revoked');
    await refused(good, /revoked key/, { setup: () => writeKey(revoked, `# leaked 2026-11\n${signer.keyId}\n`), undo: () => unlinkSync(revoked) });
  });
  it('a valid signature of another release (1.0.0 manifest and signature presented as 1.1.0)', async () => {
    await refused({ ...good, manifest: other.manifest, signature: other.signature }, /signed manifest is for 1\.0\.0, not 1\.1\.0/);
  });
  it('a correctly signed manifest naming another version', async () => {
    await refused(resign(good, signer, (m) => void (m.version = '1.1.1')), /signed manifest is for 1\.1\.1/);
  });
  it('no signature while keys are configured', async () => {
    await refused({ ...good, signature: null }, /no signature .* requires signed releases/);
  });
  it('no manifest while keys are configured', async () => {
    await refused({ ...good, manifest: null }, /no manifest/);
  });
  it('no signature beside a ./file archive', async () => {
    await refused({ ...good, signature: null, manifest: null }, /no signature/, { file: true });
  });
  it('an oversized manifest is refused before it is read', async () => {
    await refused({ ...good, manifest: Buffer.alloc(8 * 1024 * 1024 + 1, 0x20) }, /larger than 8388608 bytes/);
  });
  it('an oversized signature file', async () => {
    await refused({ ...good, signature: Buffer.alloc(5000, 0x41) }, /larger than 4096 bytes/);
  });
  it('an RSA public key in the keys folder', async () => {
    const f = path.join(dev.keys, 'rsa.pub');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' });
    await refused(good, /rsa key; only ed25519/, { setup: () => writeKey(f, rsa), undo: () => unlinkSync(f) });
  });
  it('an ed448 public key in the keys folder', async () => {
    const f = path.join(dev.keys, 'ed448.pub');
    const ed448 = generateKeyPairSync('ed448').publicKey.export({ type: 'spki', format: 'pem' });
    await refused(good, /ed448 key; only ed25519/, { setup: () => writeKey(f, ed448), undo: () => unlinkSync(f) });
  });
  it('a key file writable by its group', async () => {
    const f = path.join(dev.keys, path.basename(pubFile));
    await refused(good, /writable by group or others/, { setup: () => chmodSync(f, 0o664), undo: () => chmodSync(f, 0o644) });
  });
  it('a world-writable keys folder', async () => {
    await refused(good, /keys.* is writable by group or others/, { setup: () => chmodSync(dev.keys, 0o777), undo: () => chmodSync(dev.keys, 0o755) });
  });
  it.runIf(process.getuid?.() === 0)('a key file owned by another user (as root only: chown)', async () => {
    const f = path.join(dev.keys, path.basename(pubFile));
    await refused(good, /owned by uid 65534, not root/, { setup: () => chownSync(f, 65534, 65534), undo: () => chownSync(f, 0, 0) });
  });
    it('a symlinked key file', async () => {
    const f = path.join(dev.keys, 'linked.pub');
    await refused(good, /symlink/, { setup: () => symlinkSync(pubFile, f), undo: () => unlinkSync(f) });
  });
  it('a manifest listing a file the archive lacks', async () => {
    await refused(async () => resign(good, signer, () => {}, await repack(good.archive, '1.1.0', work, (t) => unlinkSync(path.join(t, 'README.md')))), /missing: "README.md"/);
  });
  it('an archive with a file the manifest lacks', async () => {
    const archive = await repack(good.archive, '1.1.0', work, (t) => writeFileSync(path.join(t, 'smolotchi/extra.py'), 'x = 1\n'));
    await refused(resign(good, signer, () => {}, archive), /not in the manifest: "smolotchi\/extra.py"/);
  });
  it('a manifest entry with the wrong hash', async () => {
    const edit = (m: { files: { path: string; sha256?: string }[] }) => void (m.files.find((f) => f.path === 'smolotchi/cli.py')!.sha256 = '0'.repeat(64));
    await refused(resign(good, signer, edit), /differs: "smolotchi\/cli.py"/);
  });
  it('a manifest entry with the wrong mode', async () => {
    const edit = (m: { files: { path: string; mode?: number }[] }) => void (m.files.find((f) => f.path === 'config.toml')!.mode = 0o755);
    await refused(resign(good, signer, edit), /differs: "config.toml"/);
  });
  it('a correctly signed manifest with an unsafe path', async () => {
    const edit = (m: { files: { path: string }[] }) => void (m.files.find((f) => f.path === 'README.md')!.path = '../README.md');
    await refused(() => Promise.resolve(resignRaw(good, signer, edit)), /'\.\.' segment/);
  });
  it('a correctly signed manifest that is not canonical JSON', async () => {
    const pretty = Buffer.from(JSON.stringify(JSON.parse(good.manifest!.toString()), null, 1));
    await refused({ ...good, manifest: pretty, signature: signer.sign(pretty) }, /canonical form/);
  });
  it('a release needing a newer tool', async () => {
    await refused(resign(good, signer, (m) => void (m.minToolVersion = '99.0.0')), /needs smolotchi-release 99\.0\.0/);
  });
  it('a signed archive that ships one of the tool\'s own file names', async () => {
    const archive = await repack(good.archive, '1.1.0', work, (t) => writeFileSync(path.join(t, '.smolotchi-files.json'), '{}'));
    await refused(async () => {
      const r = resign(good, signer, () => {}, archive);
      return resignRaw(r, signer, (m) => {
        m.files.unshift({ path: '.smolotchi-files.json', type: 'file', sha256: sha256(Buffer.from('{}')), size: 2, mode: 0o644 });
      });
    }, /reserved for the release tool/);
  });
});

/** Re-sign a manifest edited as plain JSON (for edits the strict parser would not let through). */
function resignRaw(r: ReleaseFiles, s: Signer, edit: (m: { files: Record<string, unknown>[] & { path: string }[] }) => void): ReleaseFiles {
  const m = JSON.parse(r.manifest!.toString());
  edit(m);
  const manifest = canonicalBytes(m);
  return { ...r, manifest, signature: s.sign(manifest) };
}

describe("a release complete on disk is checked against today's keys before a switch", () => {
  it('installed unsigned before keys were configured: install and rollback --to refuse it (exit 4)', async () => {
    const dev = device('keys-later');
    renameSync(dev.keys, `${dev.keys}.off`);
    for (const v of ['1.0.0', '1.1.0']) expect((await dev.run('install', v, '--source', pub)).exitCode).toBe(0);
    renameSync(`${dev.keys}.off`, dev.keys);
    for (const args of [['rollback', '--to', '1.0.0'], ['install', '1.0.0', '--allow-downgrade', '--source', pub]]) {
      const r = await dev.run(...args);
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(4);
      expect(r.stderr).toMatch(/release 1\.0\.0 on disk does not pass today's keys: it was installed unsigned/);
      expect(currentOf(dev.root)).toBe('releases/1.1.0');
    }
  });

  it('signed by a key revoked since: refused (exit 4); without the revocation it switches', async () => {
    const dev = device('revoked-later');
    for (const v of ['1.0.0', '1.1.0']) expect((await dev.run('install', v, '--source', pub)).exitCode).toBe(0);
    writeKey(path.join(dev.keys, 'revoked'), `${signer.keyId}\n`);
    const r = await dev.run('rollback', '--to', '1.0.0');
    expect(r.exitCode, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/release 1\.0\.0 on disk does not pass today's keys: .*revoked/);
    expect(currentOf(dev.root)).toBe('releases/1.1.0');
    rmSync(path.join(dev.keys, 'revoked'));
    const ok = await dev.run('rollback', '--to', '1.0.0');
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(currentOf(dev.root)).toBe('releases/1.0.0');
  });
});
