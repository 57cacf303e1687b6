/**
 * How the live app data compares with a release's snapshot: rows a restore drops, schema versions.
 * Read-only: never opens a live database in place, only a private copy in a root-only folder.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { liveFacts, type DbFacts } from '../../adapters/app-db.js';
import type { Context } from '../context.js';
import type { Snapshot } from './data-snapshots.js';

/** How the live data compares with a release's snapshot: what a restore would drop, and the schemas. */
export interface DataComparison {
  snapshotDeployId: number;
  takenAt: string;
  databases: Array<{
    path: string;
    snapshotSchema: number;
    /** null: no live database, or it could not be read (being written). */
    liveSchema: number | null;
    /** Rows in the live database beyond the snapshot's, summed over its tables. */
    newerRows: number | null;
    /** The same per table, only tables with newer rows. */
    newerByTable: Record<string, number>;
  }>;
  schemaDiffers: boolean;
  newerRows: number;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

function newerByTable(live: DbFacts, snap: Record<string, number>): Record<string, number> {
  const entries = Object.entries(live.rows).map(([table, n]) => [table, Math.max(0, n - (snap[table] ?? 0))] as const);
  return Object.fromEntries(entries.filter(([, n]) => n > 0));
}

/** "3 events, 1 schema_version": where the rows a restore drops are. */
export function describeNewer(c: DataComparison): string {
  const parts = c.databases.flatMap((d) => Object.entries(d.newerByTable).map(([t, n]) => `${n} ${t}`));
  return `${c.newerRows} rows written since will be lost${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

/** Read-only: the live databases are read through a private copy in a temporary root-only folder. */
export async function compareWithSnapshot(ctx: Context, s: Snapshot): Promise<DataComparison> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'smolotchi-data-'));
  try {
    const databases: DataComparison['databases'] = [];
    for (const db of s.databases) {
      const live = await liveFacts(path.join(ctx.layout.root, db.path), work).catch(() => null);
      const byTable = live ? newerByTable(live, db.rows) : {};
      databases.push({ path: db.path, snapshotSchema: db.schemaVersion, liveSchema: live?.schemaVersion ?? null, newerRows: live ? sum(Object.values(byTable)) : null, newerByTable: byTable });
    }
    return {
      snapshotDeployId: s.deployId,
      takenAt: s.takenAt,
      databases,
      schemaDiffers: databases.some((d) => d.liveSchema !== null && d.liveSchema !== d.snapshotSchema),
      newerRows: sum(databases.map((d) => d.newerRows ?? 0)),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** "3 h 12 min", for how old a snapshot is. */
export function age(sinceIso: string, now = Date.now()): string {
  const minutes = Math.max(0, Math.round((now - Date.parse(sinceIso)) / 60_000));
  if (minutes < 60) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  return `${Math.floor(minutes / 1440)} days`;
}
