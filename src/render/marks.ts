/**
 * Text for `release mark`, and how a mark's author reads in list and status.
 * Never decides anything: it formats what the command returned.
 */

import type { MarkResult } from '../commands/mark.js';

export function renderMark(r: MarkResult): string {
  const lines = [`marked ${r.version} ${r.state}${r.was && r.was !== r.state ? ` (was ${r.was})` : ''}${r.reason ? `: ${r.reason}` : ''}`];
  if (r.state === 'bad' && r.current) lines.push(`${r.version} is still current: \`smolotchi release rollback\` switches to the last good release`);
  if (r.state === 'bad' && !r.current) lines.push(`${r.version} will not be installed again without --force, nor be a rollback target`);
  if (r.degradedCleared) lines.push('degraded state cleared: you vouched for the current release');
  return lines.join('\n');
}

/** Who set a mark, as people say it. */
export const markedBy = (m: { markedBy: string | null; user?: string | null }) =>
  m.markedBy === 'operator' ? `by ${m.user ?? 'an operator'}` : m.markedBy === 'gate' ? 'by the health gate' : m.markedBy === 'rebuild' ? 'by a history rebuild' : '';
