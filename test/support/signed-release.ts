import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTarGz, extractTarFile } from '../../src/adapters/tar.js';
import { encodeManifest, parseManifest, type Manifest } from '../../src/core/trust/manifest.js';
import { parsePrivateKey, signManifest } from '../../src/core/trust/signing.js';

/** The four files of a published release, as bytes, so a test can alter any of them. */
export interface ReleaseFiles {
  version: string;
  archive: Buffer;
  checksum: string | null;
  manifest: Buffer | null;
  signature: Buffer | null;
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
export const names = (version: string) => ({
  archive: `smolotchi-${version}.tar.gz`,
  manifest: `smolotchi-${version}.manifest.json`,
  signature: `smolotchi-${version}.manifest.json.sig`,
});

export function readRelease(dir: string, version: string): ReleaseFiles {
  const n = names(version);
  return {
    version,
    archive: readFileSync(path.join(dir, n.archive)),
    checksum: readFileSync(path.join(dir, `${n.archive}.sha256`), 'utf8'),
    manifest: readFileSync(path.join(dir, n.manifest)),
    signature: readFileSync(path.join(dir, n.signature)),
  };
}

/** Write the files into a fresh folder (a tarball source); null files are left out. */
export function publish(dir: string, r: ReleaseFiles): string {
  const n = names(r.version);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, n.archive), r.archive);
  if (r.checksum !== null) writeFileSync(path.join(dir, `${n.archive}.sha256`), r.checksum);
  if (r.manifest !== null) writeFileSync(path.join(dir, n.manifest), r.manifest);
  if (r.signature !== null) writeFileSync(path.join(dir, n.signature), r.signature);
  return dir;
}

export const checksumLine = (archive: Buffer, version: string): string => `${sha256(archive)}  ${names(version).archive}\n`;

export interface Signer {
  sign(manifest: Buffer): Buffer;
  keyId: string;
}

export function signerFromFile(keyFile: string): Signer {
  const { key, keyId } = parsePrivateKey(readFileSync(keyFile), keyFile);
  return { keyId, sign: (m) => signManifest(m, key, keyId) };
}

/** Re-sign a manifest after `edit` changed it (the archive facts follow `archive` when given). */
export function resign(r: ReleaseFiles, signer: Signer, edit: (m: Manifest) => void, archive?: Buffer): ReleaseFiles {
  const m = parseManifest(r.manifest!);
  if (archive) m.archive = { sha256: sha256(archive), size: archive.length };
  edit(m);
  const manifest = encodeManifest(m);
  return { ...r, archive: archive ?? r.archive, checksum: checksumLine(archive ?? r.archive, r.version), manifest, signature: signer.sign(manifest) };
}

/** Unpack an archive, let `edit` change the tree, pack it again the way `pack` does. */
export async function repack(archive: Buffer, version: string, work: string, edit: (tree: string) => void): Promise<Buffer> {
  const dir = mkdtempSync(path.join(work, 'repack-'));
  try {
    writeFileSync(path.join(dir, 'in.tar.gz'), archive);
    mkdirSync(path.join(dir, 'tree'));
    await extractTarFile(path.join(dir, 'in.tar.gz'), path.join(dir, 'tree'), { gzip: true, topLevel: `smolotchi-${version}` });
    edit(path.join(dir, 'tree'));
    await createTarGz(path.join(dir, 'tree'), path.join(dir, 'out.tar.gz'), `smolotchi-${version}`);
    return readFileSync(path.join(dir, 'out.tar.gz'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Everything a refused command must leave alone under a sandbox root, plus any extra paths (a
 * canary): names, types, modes, file sizes, mtimes and hashes, link targets. The lock dir and the history
 * database (a failed deploy is recorded there, by design) are left out.
 */
export function treeState(root: string, extra: string[] = []): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    const rel = path.relative(root, p);
    // The history (its rows record the refusal) and its bad-marks sidecar are not "the tree".
    if (rel === 'run' || /^var\/lib\/smolotchi\/release\/(releases\.db|bad-marks\.json)/.test(rel)) return;
    const st = lstatSync(p);
    // A folder's mtime moves whenever a refused install's staging folder comes and goes inside it.
    const what = st.isSymbolicLink() ? `-> ${readlinkSync(p)}` : st.isFile() ? `${st.size} ${st.mtimeMs} ${sha256(readFileSync(p))}` : 'dir';
    out.push(`${rel} ${(st.mode & 0o7777).toString(8)} ${what}`);
    if (st.isDirectory() && !rel.endsWith('.venv')) for (const n of readdirSync(p).sort()) walk(path.join(p, n));
  };
  if (existsSync(root)) walk(root);
  for (const p of extra) walk(p);
  return out;
}
