/**
 * The producing side of signed releases: describe an archive, write the four release files.
 * Never signs what a device would refuse to extract, nor publishes a signature before its files.
 */

import { copyFile, mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { extractTarFile, sha256File } from '../../adapters/tar.js';
import { ReleaseError } from '../errors.js';
import { fsyncDir, randomSuffix, writeFileAtomic } from '../fsutil.js';
import { encodeManifest, MANIFEST_MIN_TOOL_VERSION, parseManifest, UNITS_PREFIX, type Manifest } from './manifest.js';
import { manifestFileName, signatureFileName } from './signed-artifact.js';
import { listTree, type TreeEntry } from './tree-files.js';

export const archiveFileName = (version: string): string => `smolotchi-${version}.tar.gz`;

export function unitsOf(files: readonly TreeEntry[]): Record<string, string> {
  const units: Record<string, string> = {};
  for (const f of files) if (f.type === 'file' && f.path.startsWith(UNITS_PREFIX)) units[f.path.slice(UNITS_PREFIX.length)] = f.sha256;
  return units;
}

/**
 * The manifest of an archive, read back through the device's own extractor: what is signed is
 * exactly what an install will see (modes normalised, links checked), and an archive the device
 * would refuse is refused here already.
 */
export async function describeArchive(archive: string, version: string, commit: string, workDir: string): Promise<Manifest> {
  const check = await mkdtemp(path.join(workDir, 'check-'));
  try {
    await extractTarFile(archive, check, { gzip: true, topLevel: `smolotchi-${version}` });
    const files = await listTree(check);
    const archiveFacts = { sha256: await sha256File(archive), size: (await stat(archive)).size };
    const manifest: Manifest = {
      schemaVersion: 1,
      name: 'smolotchi',
      version,
      commit,
      archive: archiveFacts,
      files,
      units: unitsOf(files),
      minToolVersion: MANIFEST_MIN_TOOL_VERSION,
    };
    parseManifest(encodeManifest(manifest)); // what we sign, the device must be able to parse
    return manifest;
  } finally {
    await rm(check, { recursive: true, force: true });
  }
}

/**
 * Publish into outDir: archive, .sha256, manifest, then the signature last, each by temp + rename,
 * so an interrupted pack never leaves a signature beside files it does not vouch for.
 */
export async function writeReleaseFiles(outDir: string, version: string, archive: string, archiveSha256: string, manifest: Buffer, signature: Buffer): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const name = archiveFileName(version);
  const out = (n: string) => path.join(outDir, n);
  const tmp = out(`.${name}.${randomSuffix()}.tmp`);
  try {
    await copyFile(archive, tmp);
    await rename(tmp, out(name));
  } finally {
    await rm(tmp, { force: true });
  }
  fsyncDir(outDir);
  const copied = await sha256File(out(name));
  if (copied !== archiveSha256) throw new ReleaseError(`${out(name)} differs from the archive that was signed (disk error?)`);
  await writeFileAtomic(out(`${name}.sha256`), `${copied}  ${name}\n`);
  await writeFileAtomic(out(manifestFileName(version)), manifest);
  await writeFileAtomic(out(signatureFileName(version)), signature);
  return [name, `${name}.sha256`, manifestFileName(version), signatureFileName(version)].map(out);
}
