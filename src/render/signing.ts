/**
 * Text for the signed-release commands (keygen, pack, verify); JSON goes through renderJson.
 * Never decides anything: it formats what the commands returned.
 */

import type { KeygenResult } from '../commands/keygen.js';
import type { PackResult } from '../commands/pack.js';
import type { VerifyResult } from '../commands/verify.js';

export function renderKeygen(r: KeygenResult): string {
  return [
    `key id:      ${r.keyId}`,
    `private key: ${r.privateKey}  (keep it secret, off the device)`,
    `public key:  ${r.publicKey}  (copy to /etc/smolotchi/keys/ on each device)`,
  ].join('\n');
}

export function renderPack(r: PackResult): string {
  return [
    `packed ${r.version} from commit ${r.commit.slice(0, 12)}: ${r.files} files, ${r.size} bytes, sha256 ${r.sha256.slice(0, 16)}…`,
    `signed by key ${r.keyId}`,
    ...r.outputs.map((f) => `  ${f}`),
  ].join('\n');
}

const listed = (label: string, paths: string[]) => (paths.length ? [`  ${label}: ${paths.slice(0, 20).join(', ')}${paths.length > 20 ? ` and ${paths.length - 20} more` : ''}`] : []);

export function renderVerify(r: VerifyResult): string {
  const lines: string[] = r.releases.length === 0 ? ['no complete releases to verify'] : [];
  for (const c of r.releases) {
    const signed = c.signedBy ? `, signed by ${c.signedBy}` : '';
    lines.push(c.status === 'ok' ? `${c.version}: ok (${c.files} files${signed})` : `${c.version}: ${c.status.toUpperCase()}${signed}`);
    lines.push(...listed('modified', c.modified), ...listed('missing', c.missing), ...listed('added', c.added));
    lines.push(...c.problems.slice(0, 20).map((p) => `  problem: ${p}`));
  }
  if (r.historyProblem) lines.push(`history: DAMAGED (${r.historyProblem}); \`smolotchi release recover\` moves it aside and starts a new one`);
  return lines.join('\n');
}
