/**
 * With git-allowed-signers present, a git release needs an ssh-signed tag at its commit.
 * Never accepts an unsigned, lightweight or foreign-signed tag, nor one at another commit.
 */

import { resolveTagCommit } from '../../../adapters/git.js';
import { verifyTagSsh } from '../../../adapters/git-verify.js';
import { IntegrityError } from '../../errors.js';

/**
 * With /etc/smolotchi/keys/git-allowed-signers present, a git release is installed only when a tag
 * naming the version (`v<ver>` or `<ver>`) at the resolved commit carries a valid ssh signature by
 * one of the allowed signers. An unsigned, lightweight or foreign-signed tag is refused (exit 4).
 */
export async function requireSignedTag(mirrorDir: string, version: string, commit: string, allowedSigners: string): Promise<string> {
  const reasons: string[] = [];
  for (const tag of [`v${version}`, version]) {
    // Only a tag at the commit being installed may vouch for it.
    if ((await resolveTagCommit(mirrorDir, tag)) !== commit) continue;
    const r = await verifyTagSsh(mirrorDir, tag, allowedSigners);
    if (r.ok) return tag;
    reasons.push(`${tag}: ${r.detail || 'not signed'}`);
  }
  throw new IntegrityError(
    `tag of ${version} is not signed by an allowed signer (${reasons.join('; ') || 'no tag at that commit'})`,
    'sign release tags with an ssh key listed in /etc/smolotchi/keys/git-allowed-signers (git tag -s with gpg.format=ssh)',
  );
}
