/**
 * Lines about the app's data in a switch: the snapshot taken, what was written back.
 * Never decides anything: it formats what the data step returned.
 */

import type { DataComparison } from '../core/data/data-compare.js';
import type { DataOutcome } from '../core/data/data-switch.js';

const dbs = (list: Array<{ path: string; schemaVersion: number }>) => list.map((d) => `${d.path} (schema ${d.schemaVersion})`).join(', ');

/** What happened to the app's data in a switch: the snapshot taken, what was written back. */
export function dataLines(data: DataOutcome | null, comparison: DataComparison | null = null): string[] {
  const lines: string[] = [];
  if (data?.restored) lines.push(`app data restored from the snapshot of ${data.restored.takenAt}: ${dbs(data.restored.databases)}`);
  if (data?.restoreFailure) lines.push(`app data NOT restored: ${data.restoreFailure}`);
  if (data?.snapshot && !data.restored) lines.push(`app data snapshot ${data.snapshot.deployId}: ${dbs(data.snapshot.databases)}`);
  if (comparison?.schemaDiffers && !data?.restored) {
    lines.push(`note: the app's data schema differs from the snapshot of ${comparison.takenAt}; \`rollback --restore-data\` restores it (${comparison.newerRows} newer rows lost)`);
  }
  return lines;
}
