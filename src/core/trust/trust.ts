/**
 * The device's trust store from /etc/smolotchi/keys: public keys, revocations, git signers.
 * Never reads a trust file through a link or one others can change, and never fails open.
 */

import type { Stats } from 'node:fs';
import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { IntegrityError } from '../errors.js';
import { checkOwnerAndMode } from '../ownership.js';
import { isKeyId, MAX_KEY_FILE_BYTES, parsePublicKey, type TrustedKeys } from './signing.js';
import type { KeyObject } from 'node:crypto';

/**
 * The device's trust configuration, from /etc/smolotchi/keys (under --root: <root>/etc/smolotchi/keys):
 *   *.pub                 ed25519 public keys (SPKI PEM) that may sign release manifests
 *   revoked               key ids refused even when their .pub is still present, one per line
 *   git-allowed-signers   ssh allowed_signers file; when present, git tags must verify against it
 */
export interface TrustStore extends TrustedKeys {
  dir: string;
  /** Every install needs a valid signature: some key or git signer is configured (or a key revoked). */
  requireSignatures: boolean;
  gitAllowedSigners: string | null;
}

export const REVOKED_FILE = 'revoked';
export const GIT_ALLOWED_SIGNERS = 'git-allowed-signers';
const MAX_LIST_BYTES = 64 * 1024;

/** Read a small trust file through one O_NOFOLLOW descriptor: no symlink, checked owner, mode and size. */
export async function readTrustFile(file: string, maxBytes: number): Promise<Buffer> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    // A symlinked key could point at a file someone else controls.
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new IntegrityError(`${file} is a symlink; trust files must be regular files`);
    throw new IntegrityError(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new IntegrityError(`${file} is not a regular file`);
    checkOwnerAndMode(st, file);
    // Checked before reading: a huge file is never loaded.
    if (st.size > maxBytes) throw new IntegrityError(`${file} is larger than ${maxBytes} bytes`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

async function checkDir(dir: string, what: string): Promise<boolean> {
  let st: Stats;
  try {
    st = await lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new IntegrityError(`cannot inspect ${what} ${dir}: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) throw new IntegrityError(`${what} ${dir} is not a directory (a symlink or a file)`);
  checkOwnerAndMode(st, dir);
  return true;
}

/** Revoked key ids: one per line, `#` comments and blank lines allowed; anything else is refused. */
export function parseRevoked(text: string, file: string): Set<string> {
  const out = new Set<string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    // Fail closed: a line we cannot read might be the revocation that matters.
    if (!isKeyId(line)) throw new IntegrityError(`${file}:${i + 1} is not a key id (16 lowercase hex digits)`);
    out.add(line);
  }
  return out;
}

/** The trust store, or null when no keys folder exists (unsigned releases are accepted then). */
export async function loadTrust(keysDir: string): Promise<TrustStore | null> {
  if (!(await checkDir(keysDir, 'keys folder'))) return null;
  // Whoever can rename entries in the parent can swap the whole keys folder.
  await checkDir(path.dirname(keysDir), 'keys folder parent');
  const keys = new Map<string, KeyObject>();
  let revoked = new Set<string>();
  let gitAllowedSigners: string | null = null;
  for (const name of (await readdir(keysDir)).sort()) {
    const file = path.join(keysDir, name);
    if (name.endsWith('.pub')) {
      const { key, keyId } = parsePublicKey(await readTrustFile(file, MAX_KEY_FILE_BYTES), file);
      keys.set(keyId, key);
    } else if (name === REVOKED_FILE) {
      revoked = parseRevoked((await readTrustFile(file, MAX_LIST_BYTES)).toString('utf8'), file);
    } else if (name === GIT_ALLOWED_SIGNERS) {
      await readTrustFile(file, MAX_LIST_BYTES); // same checks; git reads it itself
      gitAllowedSigners = file;
    }
  }
  // Any trust material means "this device checks signatures", for every source: a revocation list
  // alone (deleting the last .pub must not open the door), or git signers alone (a tarball cannot
  // be checked against them, so it is refused rather than installed unchecked).
  const requireSignatures = keys.size > 0 || revoked.size > 0 || gitAllowedSigners !== null;
  return { dir: keysDir, keys, revoked, requireSignatures, gitAllowedSigners };
}

/**
 * Fail closed for git sources too: with any trust material present, a git tag must verify against
 * git-allowed-signers; without that file there is nothing to check it against, so it is refused.
 */
export function gitSignersRequired(trust: TrustStore | null): string | null {
  if (!trust?.requireSignatures) return null;
  if (trust.gitAllowedSigners) return trust.gitAllowedSigners;
  throw new IntegrityError(
    `this device requires signed releases (${trust.dir}), but has no ${GIT_ALLOWED_SIGNERS} to check a git tag against`,
    `add the release signers' ssh keys to ${path.join(trust.dir, GIT_ALLOWED_SIGNERS)} and sign tags (git tag -s, gpg.format=ssh), or install signed archives made by \`smolotchi release pack\``,
  );
}
