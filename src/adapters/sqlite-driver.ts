/**
 * better-sqlite3 loaded through require, and its native addon named by path: what every SQLite adapter opens.
 * Never used outside src/adapters/ (only adapters touch SQLite).
 */

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';

const require = createRequire(import.meta.url);

/**
 * Required rather than imported: an ESM import of this CommonJS package first re-parses its files
 * for named exports and wraps it in a module facade, a few ms on every command that opens a database.
 */
export const Database = require('better-sqlite3') as typeof BetterSqlite3;
export type Db = BetterSqlite3.Database;

let addon: { nativeBinding?: string } | undefined;

/**
 * better-sqlite3's addon named by its path: its default lookup (the `bindings` package) costs two
 * more modules, a stack trace and a dozen stats on every command. Another build layout: that lookup.
 */
export function sqliteAddon(): { nativeBinding?: string } {
  if (!addon) {
    // The package's own folder (from its resolved entry, lib/index.js), as Node loads it.
    const file = path.join(path.dirname(path.dirname(require.resolve('better-sqlite3'))), 'build', 'Release', 'better_sqlite3.node');
    addon = existsSync(file) ? { nativeBinding: file } : {};
  }
  return addon;
}
