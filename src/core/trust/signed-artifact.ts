/**
 * Verifies a signed tarball: signature, manifest version, archive hash, then the extracted tree.
 * Never installs an unsigned or mismatching archive while keys exist: each check fails closed.
 */

import { IntegrityError } from '../errors.js';
import { MAX_MANIFEST_BYTES, parseManifest, type Manifest } from './manifest.js';
import { TOOL_VERSION } from '../package-root.js';
import { MAX_SIGNATURE_BYTES, verifyManifestSignature } from './signing.js';
import { diffTrees, isCleanDiff, listTree, summarizePaths } from './tree-files.js';
import type { TrustStore } from './trust.js';
import { compareVersions } from '../version.js';

/**
 * A tarball release when the device has keys: `smolotchi-<ver>.manifest.json` and its `.sig` sit
 * beside the archive. Checked in this order, each failing closed with exit 4: the signature over
 * the manifest bytes, the manifest's version, its hash of the private archive copy; after
 * extraction, the tree against the manifest's file list.
 */

export interface SignedArtifact {
  keyId: string;
  manifest: Manifest;
  /** The exact bytes that were verified: kept in the release for `verify`. */
  manifestBytes: Buffer;
  signatureBytes: Buffer;
}

/** Reads a file beside the archive (same folder or URL), refusing it past maxBytes; null when absent. */
export type SiblingReader = (name: string, maxBytes: number) => Promise<Buffer | null>;

export const manifestFileName = (version: string): string => `smolotchi-${version}.manifest.json`;
export const signatureFileName = (version: string): string => `${manifestFileName(version)}.sig`;

export interface ArchiveFacts {
  version: string;
  /** Hash and size of the PRIVATE copy: the bytes that will be extracted, not the source file. */
  sha256: string;
  size: number;
}

export async function verifySignedArchive(trust: TrustStore, readSibling: SiblingReader, archive: ArchiveFacts): Promise<SignedArtifact> {
  const sigName = signatureFileName(archive.version);
  const manName = manifestFileName(archive.version);
  // Fail closed: with keys configured, an unsigned archive is refused, never "warned about".
  const signatureBytes = await readSibling(sigName, MAX_SIGNATURE_BYTES);
  if (signatureBytes === null) throw new IntegrityError(`no signature ${sigName} beside the archive, and this device requires signed releases`);
  const manifestBytes = await readSibling(manName, MAX_MANIFEST_BYTES);
  if (manifestBytes === null) throw new IntegrityError(`no manifest ${manName} beside the archive, and this device requires signed releases`);
  // The signature is checked over the raw bytes before the manifest is even parsed.
  const keyId = verifyManifestSignature(manifestBytes, signatureBytes, trust);
  const manifest = parseManifest(manifestBytes, manName);
  // A valid signature of another release (a replay) names another version.
  if (manifest.version !== archive.version) throw new IntegrityError(`signed manifest is for ${manifest.version}, not ${archive.version}`);
  if (compareVersions(TOOL_VERSION, manifest.minToolVersion) < 0) {
    throw new IntegrityError(`release ${archive.version} needs smolotchi-release ${manifest.minToolVersion} or newer (this is ${TOOL_VERSION})`);
  }
  // The signature vouches for these archive bytes only: any other archive is refused before extraction.
  if (manifest.archive.sha256 !== archive.sha256 || manifest.archive.size !== archive.size) {
    throw new IntegrityError(`archive does not match its signed manifest: sha256 ${archive.sha256.slice(0, 16)}… (${archive.size} bytes), signed ${manifest.archive.sha256.slice(0, 16)}… (${manifest.archive.size} bytes)`);
  }
  return { keyId, manifest, manifestBytes, signatureBytes };
}

/** What was extracted must be exactly what was signed: nothing extra, nothing missing, nothing different. */
export async function checkTreeAgainstManifest(dir: string, manifest: Manifest): Promise<void> {
  const diff = diffTrees(manifest.files, await listTree(dir));
  if (isCleanDiff(diff)) return;
  const parts = [
    diff.modified.length ? `differs: ${summarizePaths(diff.modified)}` : '',
    diff.missing.length ? `missing: ${summarizePaths(diff.missing)}` : '',
    diff.added.length ? `not in the manifest: ${summarizePaths(diff.added)}` : '',
  ].filter(Boolean);
  throw new IntegrityError(`extracted tree does not match the signed manifest (${parts.join('; ')})`);
}
