/**
 * Checks a mirror tag's ssh signature with `git verify-tag` against an allowed_signers file.
 * Never lets a gpg or x509 keyring vouch for a tag, nor an unsafe tag name reach git.
 */

import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { SAFE_TAG } from './git.js';
import { gitAllowingFailure } from './git-run.js';
import { tailLines } from './process.js';

const VERIFY_TIMEOUT_MS = 30_000;

/**
 * `git verify-tag` of a mirror's tag against an ssh allowed_signers file. Only ssh signatures count:
 * the openpgp and x509 verifiers are replaced by `false`, so a keyring that happens to exist on
 * the device never vouches for a tag. Resolves to git's one-line verdict; rejects with its reason.
 */
export async function verifyTagSsh(mirrorDir: string, tag: string, allowedSignersFile: string): Promise<{ ok: boolean; detail: string }> {
  if (!SAFE_TAG.test(tag)) throw new UsageError(`not a safe tag name: ${JSON.stringify(tag)}`);
  const config = [
    'gpg.format=ssh',
    'gpg.ssh.program=ssh-keygen',
    `gpg.ssh.allowedSignersFile=${path.resolve(allowedSignersFile)}`,
    'gpg.openpgp.program=false',
    'gpg.x509.program=false',
  ];
  // Full ref name after --end-of-options: the tag can never be read as an option or another rev.
  // Through simple-git's guard: the allowed_signers path in its config comes from the operator's --root.
  const r = await gitAllowingFailure(mirrorDir, ['verify-tag', '--end-of-options', `refs/tags/${tag}`], { config, timeoutMs: VERIFY_TIMEOUT_MS });
  return { ok: r.exitCode === 0, detail: tailLines(`${r.stderr}\n${r.stdout}`, 2).replace(/\n/g, '; ') };
}
