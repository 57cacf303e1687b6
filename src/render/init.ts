/**
 * Text for `release init`: one row per thing it looked at; a dry run says what it would do.
 * Never decides anything: it formats the InitResult.
 */

import type { InitResult } from '../commands/init.js';
import { table } from './table.js';

/** One row per thing init looked at; a dry run says what it would do. */
export function renderInit(r: InitResult): string {
  const dryRun = r.status === 'dry-run';
  const verb = (a: string) => (dryRun && (a === 'created' || a === 'changed') ? `would be ${a}` : a);
  const rows = r.changes.map((c) => [verb(c.action), c.kind, c.path, c.detail]);
  const done = r.changes.filter((c) => c.action === 'created' || c.action === 'changed').length;
  const summary = dryRun
    ? `dry run: ${done} change(s) would be made under ${r.root}, nothing was changed`
    : done === 0 ? `nothing to do: ${r.root} is already set up` : `${done} change(s) made under ${r.root}`;
  return [table(['ACTION', 'KIND', 'PATH', 'DETAIL'], rows), summary].join('\n');
}
