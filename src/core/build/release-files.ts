/**
 * The file list and manifest copy kept in a release for `verify`, and reading them back.
 * Never lets a release ship one of the tool's own file names: it would dictate what verify trusts.
 */

import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { canonicalBytes, parseCanonical } from '../trust/canonical-json.js';
import { IntegrityError } from '../errors.js';
import { MAX_MANIFEST_BYTES, parseEntries } from '../trust/manifest.js';
import type { SignedArtifact } from '../trust/signed-artifact.js';
import { STAMP_FILE } from '../state/stamp.js';
import { listTree, type TreeEntry, type TreeFilter } from '../trust/tree-files.js';

/**
 * What a release looked like when it was installed, kept beside it for `verify`:
 *   .smolotchi-files.json           every entry of the source tree (before the venv build)
 *   .smolotchi-manifest.json(.sig)  the signed manifest it was verified against, if any
 * The stamp (written last) carries the sha256 of the file list, so the list cannot be edited alone.
 */

export const FILES_RECORD = '.smolotchi-files.json';
export const MANIFEST_COPY = '.smolotchi-manifest.json';
export const SIGNATURE_COPY = `${MANIFEST_COPY}.sig`;
const TOOL_FILES = new Set([STAMP_FILE, FILES_RECORD, MANIFEST_COPY, SIGNATURE_COPY]);
const VENV = '.venv';

/** Not part of what was shipped: the venv and the tool's own files at the top of the release. */
export const shippedOnly: TreeFilter = (rel) => !rel.includes('/') && (rel === VENV || TOOL_FILES.has(rel));

/** The shipped tree of an installed release, and the `__pycache__` entries that no source explains. */
export async function listInstalledTree(dir: string): Promise<{ tree: TreeEntry[]; orphans: string[] }> {
  return splitBytecode(await listTree(dir, shippedOnly));
}

/**
 * Write the file list (and the verified manifest copy) into a freshly fetched tree; returns the
 * list's sha256 for the stamp. A tree that already holds one of the tool's file names is refused:
 * the release would be dictating what `verify` compares against.
 */
export async function recordReleaseFiles(dir: string, version: string, signed: SignedArtifact | undefined): Promise<string> {
  await assertNoToolFiles(dir, version);
  const { tree: files } = await listInstalledTree(dir);
  const bytes = canonicalBytes({ schemaVersion: 1, version, files });
  if (signed) {
    await writeExclusive(path.join(dir, MANIFEST_COPY), signed.manifestBytes);
    await writeExclusive(path.join(dir, SIGNATURE_COPY), signed.signatureBytes);
  }
  await writeExclusive(path.join(dir, FILES_RECORD), bytes);
  return sha256(bytes);
}

/** The tool's own file names are reserved: a release shipping one would dictate what `verify` trusts. */
export async function assertNoToolFiles(dir: string, version: string): Promise<void> {
  const shipped = (await readdir(dir)).filter((n) => TOOL_FILES.has(n));
  if (shipped.length) throw new IntegrityError(`release ${version} ships ${shipped[0]}, a name reserved for the release tool`);
}

async function writeExclusive(file: string, content: Buffer): Promise<void> {
  await writeFile(file, content, { flag: 'wx', mode: 0o644 });
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Read a tool file of an installed release (no symlinks, bounded), or null when it is absent. */
export async function readReleaseFile(dir: string, name: string, maxBytes = MAX_MANIFEST_BYTES): Promise<Buffer | null> {
  let handle;
  try {
    handle = await open(path.join(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new IntegrityError(`${name} in ${dir} cannot be read: ${(err as Error).message}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile() || st.size > maxBytes) throw new IntegrityError(`${name} in ${dir} is not a regular file of at most ${maxBytes} bytes`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** The recorded list, checked against the hash the stamp carries. */
export function parseFilesRecord(bytes: Buffer, expectedHash: string, version: string): TreeEntry[] {
  const fail = (why: string) => new IntegrityError(`${FILES_RECORD} of ${version} refused: ${why}`);
  if (sha256(bytes) !== expectedHash) throw fail('its hash differs from the one in the stamp (the list was altered)');
  const v = parseCanonical(bytes, fail) as { schemaVersion?: unknown; version?: unknown; files?: unknown } | null;
  if (typeof v !== 'object' || v === null || v.schemaVersion !== 1 || v.version !== version) throw fail('not a schema 1 file list of this version');
  return parseEntries(v.files, fail);
}

const PYC = /^(.+?)\.(?!opt-)[a-z]+-\d+(?:\.opt-[12])?\.pyc$/;

/**
 * Split a listing (made with `shippedOnly`) into the shipped tree and the bytecode that
 * byte-compiling wrote into `__pycache__/` folders. compileall only writes
 * `__pycache__/<name>.<tag>.pyc` for a `<name>.py` beside the folder, so anything else in a
 * `__pycache__` (another name, a subfolder, a link) was put there by someone: an orphan.
 */
export function splitBytecode(all: readonly TreeEntry[]): { tree: TreeEntry[]; orphans: string[] } {
  const isCacheDir = (e: TreeEntry) => e.type === 'dir' && (e.path === '__pycache__' || e.path.endsWith('/__pycache__'));
  const inCache = (p: string) => p.startsWith('__pycache__/') || p.includes('/__pycache__/');
  const tree = all.filter((e) => !isCacheDir(e) && !inCache(e.path));
  const sources = new Set(tree.filter((e) => e.type === 'file' && e.path.endsWith('.py')).map((e) => e.path.slice(0, -3)));
  const orphans: string[] = [];
  for (const e of all) {
    if (!inCache(e.path)) continue;
    const at = e.path.lastIndexOf('__pycache__/');
    const parent = e.path.slice(0, at);
    const name = e.path.slice(at + '__pycache__/'.length);
    const pyc = PYC.exec(name);
    if (e.type !== 'file' || name.includes('/') || !pyc || !sources.has(parent + pyc[1])) orphans.push(e.path);
  }
  return { tree, orphans };
}

/** A manifest's file list seen the way an installed tree is listed (no venv, tool files or bytecode). */
export function shippedEntries(entries: readonly TreeEntry[]): TreeEntry[] {
  return splitBytecode(entries.filter((e) => !shippedOnly(e.path.split('/')[0]!, e.type === 'dir'))).tree;
}
