/**
 * Checks a complete release against today's keys before install or rollback --to switch to it.
 * Never switches to a release the device would refuse today: exit 4 with the first finding.
 */

import type { Context } from '../context.js';
import { IntegrityError } from '../errors.js';
import { releaseDir } from '../layout.js';
import { requireSignedTag } from '../build/sources/git-signed.js';
import { readStamp } from '../state/stamp.js';
import { gitSignersRequired, loadTrust } from '../trust/trust.js';
import { verifyRelease } from './verify-release.js';

/**
 * A release complete on disk was checked against the keys of the day it was installed. Before
 * `install` or `rollback --to` switches to it, it is checked against today's: a device that has
 * required signatures since, or revoked a key, must not switch to what it would now refuse.
 * Git releases: a tag at the recorded commit must verify against git-allowed-signers in the
 * mirror as it is now (no network); tarballs: the kept manifest's signature with today's keys.
 * Both: the tree re-hashed against what was recorded. Exit 4 with the first finding.
 */
export async function reverifyBeforeSwitch(ctx: Context, version: string): Promise<void> {
  const trust = await loadTrust(ctx.layout.keysDir);
  if (!trust?.requireSignatures) return;
  const dir = releaseDir(ctx.layout, version);
  const stamp = await readStamp(dir, version);
  if (!stamp) return; // incomplete: never a target anyway
  const refuse = (why: string) =>
    new IntegrityError(
      `release ${version} on disk does not pass today's keys: ${why}`,
      'this device requires signed releases: install a release signed by a trusted key, or remove this one (`smolotchi release prune`)',
    );
  if (stamp.kind === 'git') {
    const signers = gitSignersRequired(trust)!;
    if (!stamp.commit) throw refuse('its stamp records no commit');
    try {
      await requireSignedTag(ctx.layout.mirrorDir, version, stamp.commit, signers);
    } catch (err) {
      throw refuse((err as Error).message);
    }
  } else if (!stamp.signedBy) {
    throw refuse('it was installed unsigned');
  }
  const check = await verifyRelease(dir, version, trust);
  if (check.status !== 'ok') {
    const finding = check.problems[0] ?? [...check.modified, ...check.missing, ...check.added].slice(0, 3).join(', ');
    throw refuse(`${check.status}: ${finding}`);
  }
}
