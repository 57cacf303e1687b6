/**
 * `release keygen`: a new ed25519 signing key pair, private key 0600, public key 0644.
 * Never overwrites a key file that already exists.
 */

import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import type { Context } from '../core/context.js';
import { UsageError } from '../core/errors.js';
import { ExitCode } from '../core/exit-codes.js';
import { generateSigningKey } from '../core/trust/signing.js';

export interface KeygenOptions {
  out: string;
}

export interface KeygenResult {
  command: 'keygen';
  keyId: string;
  privateKey: string;
  publicKey: string;
  exitCode: number;
}

/** Create `file` with exactly `mode`, never replacing anything already there. */
async function writeNew(file: string, content: string, mode: number): Promise<void> {
  let handle;
  try {
    // Exclusive create: an existing key is never overwritten, and no other process can slip one in.
    handle = await open(file, 'wx', mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${file} already exists; not overwriting a key`);
    throw err;
  }
  try {
    await handle.chmod(mode); // the umask must not decide who can read a private key
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** `keygen --out DIR`: an ed25519 pair, `smolotchi-<keyid>.key` (0600) and `smolotchi-<keyid>.pub` (0644). */
export async function keygen(options: KeygenOptions, _ctx: Context): Promise<KeygenResult> {
  const out = path.resolve(options.out);
  await mkdir(out, { recursive: true, mode: 0o700 });
  const { keyId, privatePem, publicPem } = generateSigningKey();
  const privateKey = path.join(out, `smolotchi-${keyId}.key`);
  const publicKey = path.join(out, `smolotchi-${keyId}.pub`);
  await writeNew(privateKey, privatePem, 0o600);
  await writeNew(publicKey, publicPem, 0o644);
  return { command: 'keygen', keyId, privateKey, publicKey, exitCode: ExitCode.ok };
}
