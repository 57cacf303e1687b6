/**
 * Re-hashes an installed release against its recorded file list and, if signed, its manifest.
 * Never throws for what it finds nor repairs it: findings are returned, the caller exits 4.
 */

import path from 'node:path';
import { IntegrityError } from '../errors.js';
import { parseManifest } from '../trust/manifest.js';
import { permissionProblems } from '../build/permissions.js';
import {
  FILES_RECORD,
  listInstalledTree,
  MANIFEST_COPY,
  parseFilesRecord,
  readReleaseFile,
  shippedEntries,
  SIGNATURE_COPY,
} from '../build/release-files.js';
import { MAX_SIGNATURE_BYTES, verifyManifestSignature } from '../trust/signing.js';
import { readStamp } from '../state/stamp.js';
import { diffTrees, type TreeDiff, type TreeEntry } from '../trust/tree-files.js';
import type { TrustStore } from '../trust/trust.js';
import { VENV_DIR } from '../build/venv.js';

export interface ReleaseCheck {
  version: string;
  /** ok; tampered (files or permissions differ); unverifiable (no file list recorded); incomplete (no stamp). */
  status: 'ok' | 'tampered' | 'unverifiable' | 'incomplete';
  files: number;
  modified: string[];
  missing: string[];
  added: string[];
  problems: string[];
  signedBy: string | null;
}

const merge = (a: string[], b: string[]): string[] => [...new Set([...a, ...b])].sort();

/**
 * Re-hash an installed release and compare it with the file list recorded at install time and,
 * for a signed release, with its signed manifest re-verified against today's keys. Reports,
 * never throws for what it finds: the caller turns any finding into exit 4.
 */
export async function verifyRelease(dir: string, version: string, trust: TrustStore | null): Promise<ReleaseCheck> {
  const check: ReleaseCheck = { version, status: 'ok', files: 0, modified: [], missing: [], added: [], problems: [], signedBy: null };
  const stamp = await readStamp(dir, version);
  if (!stamp) return { ...check, status: 'incomplete', problems: ['no valid completion stamp: not a complete release'] };
  check.signedBy = stamp.signedBy ?? null;
  const { tree, orphans } = await listInstalledTree(dir);
  check.files = tree.filter((e) => e.type === 'file').length;
  const found = (d: TreeDiff) => {
    check.modified = merge(check.modified, d.modified);
    check.missing = merge(check.missing, d.missing);
    check.added = merge(check.added, d.added);
  };
  found({ modified: [], missing: [], added: orphans });

  const attempt = async (what: () => Promise<void>) => {
    try {
      await what();
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      check.problems.push(err.message);
    }
  };
  if (!stamp.filesHash) check.problems.push('no file list was recorded for this release (installed by an older tool): it cannot be verified');
  else {
    await attempt(async () => {
      const bytes = await readReleaseFile(dir, FILES_RECORD);
      if (!bytes) throw new IntegrityError(`${FILES_RECORD} is missing`);
      found(diffTrees(parseFilesRecord(bytes, stamp.filesHash!, version), tree));
    });
  }
  await attempt(async () => {
    const manifest = await signedManifestFiles(dir, version, stamp.signedBy ?? null, trust);
    if (manifest) found(diffTrees(manifest, tree));
  });
  const venv = path.join(dir, VENV_DIR);
  if (!(await readReleaseFile(venv, 'pyvenv.cfg').catch(() => null))) check.problems.push(`${VENV_DIR} is missing or has no pyvenv.cfg`);
  check.problems.push(...(await permissionProblems(dir)));
  const releases = path.dirname(dir);
  for (const parent of [releases, path.dirname(releases)]) check.problems.push(...(await permissionProblems(parent, path.dirname(parent), 1, false)));

  const dirty = check.modified.length + check.missing.length + check.added.length + check.problems.length > 0;
  check.status = !stamp.filesHash ? 'unverifiable' : dirty ? 'tampered' : 'ok';
  return check;
}

/** The signed manifest kept in the release, re-verified with the keys configured now. */
async function signedManifestFiles(dir: string, version: string, signedBy: string | null, trust: TrustStore | null): Promise<TreeEntry[] | null> {
  const manifestBytes = await readReleaseFile(dir, MANIFEST_COPY);
  const signatureBytes = await readReleaseFile(dir, SIGNATURE_COPY, MAX_SIGNATURE_BYTES);
  if (!manifestBytes && !signatureBytes && !signedBy) return null;
  if (!manifestBytes || !signatureBytes) throw new IntegrityError(`signed release without its ${!manifestBytes ? MANIFEST_COPY : SIGNATURE_COPY}`);
  if (!trust?.requireSignatures) throw new IntegrityError('release was signed, but no keys are configured now: its signature cannot be re-checked');
  const keyId = verifyManifestSignature(manifestBytes, signatureBytes, trust);
  if (signedBy && keyId !== signedBy) throw new IntegrityError(`manifest is now signed by ${keyId}, but the stamp says ${signedBy}`);
  const manifest = parseManifest(manifestBytes, MANIFEST_COPY);
  if (manifest.version !== version) throw new IntegrityError(`signed manifest is for ${manifest.version}, not ${version}`);
  return shippedEntries(manifest.files);
}
