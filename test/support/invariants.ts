import Database from 'better-sqlite3';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { readLock } from '../../src/core/state/lock.js';
import { makeLayout } from '../../src/core/layout.js';
import { isSameLiveProcess } from '../../src/core/state/proc.js';
import { STAMP_FILE } from '../../src/core/state/stamp.js';
import type { Run } from './crash-fixture.js';

/**
 * I1-I7 of DESIGN.md, checked on a sandbox root after the next command's recovery has run.
 * Returns the problems found (empty = all hold), so a failing case can name its kill point.
 */

export type Cli = (args: string[]) => Promise<Run>;

export interface InvariantOptions {
  /** I2: the versions `current` may name (null: no current). */
  allowed?: (string | null)[];
  /**
   * I2, strictly: `current` before the interrupted command. Anything else it names after recovery
   * must have been proven good (an unproven release is never left current, even with no old one).
   */
  old?: string | null;
  /** I7: install these versions in turn, then roll back; all must succeed. Omit to skip I7. */
  next?: { install: string[] };
}

function stampOk(releaseDir: string, version: string): boolean {
  try {
    const stamp = JSON.parse(readFileSync(path.join(releaseDir, STAMP_FILE), 'utf8')) as { version?: string; requirementHash?: unknown };
    return stamp.version === version && typeof stamp.requirementHash === 'string';
  } catch {
    return false;
  }
}

export function currentOf(root: string): string | null {
  const layout = makeLayout(root);
  if (!existsSync(layout.currentLink) && !lstatExists(layout.currentLink)) return null;
  const m = /^releases\/([^/]+)$/.exec(readlinkSync(layout.currentLink));
  return m ? m[1]! : `<bad link ${readlinkSync(layout.currentLink)}>`;
}

function lstatExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

const listDir = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);

function markOf(dbFile: string, version: string): string | null {
  if (!existsSync(dbFile)) return null;
  const db = new Database(dbFile, { readonly: true });
  try {
    return (db.prepare('SELECT state FROM release_marks WHERE version = ?').get(version) as { state: string } | undefined)?.state ?? null;
  } finally {
    db.close();
  }
}

/** I1, I2, I4, I5, I6: what the filesystem and the history show right now. */
export function checkState(root: string, opts: InvariantOptions = {}): string[] {
  const layout = makeLayout(root);
  const problems: string[] = [];
  const current = currentOf(root);
  // I1
  if (current !== null && !stampOk(path.join(layout.releasesDir, current), current)) problems.push(`I1: current names ${current}, which is not a complete release`);
  // I2
  if (opts.allowed && !opts.allowed.includes(current)) problems.push(`I2: current is ${current}, expected one of ${opts.allowed.join(', ')}`);
  if (opts.old !== undefined && current !== opts.old && current !== null && markOf(layout.historyDb, current) !== 'good') {
    problems.push(`I2: current is ${current}, neither the old ${opts.old} nor proven good`);
  }
  // I4
  for (const dir of [layout.stagingDir, layout.trashDir]) {
    if (listDir(dir).length > 0) problems.push(`I4: ${path.basename(dir)} not empty: ${listDir(dir).join(', ')}`);
  }
  for (const name of listDir(layout.releasesDir)) {
    if (!stampOk(path.join(layout.releasesDir, name), name)) problems.push(`I4: releases/${name} has no valid stamp`);
  }
  const tempLinks = listDir(layout.optDir).filter((n) => n.startsWith('.current.'));
  if (tempLinks.length) problems.push(`I4: temp links left: ${tempLinks.join(', ')}`);
  // I5
  if (existsSync(layout.historyDb)) {
    const db = new Database(layout.historyDb, { readonly: true });
    try {
      const running = db.prepare("SELECT id, kind, step FROM deploys WHERE status = 'running'").all() as { id: number; kind: string; step: string }[];
      for (const r of running) problems.push(`I5: deploy #${r.id} (${r.kind}) still running at step ${r.step}`);
    } finally {
      db.close();
    }
  }
  // I6
  const holder = readLock(layout.lockFile);
  if (existsSync(layout.lockFile)) problems.push(`I6: lock file present (holder ${holder?.pid ?? 'unreadable'}, ${holder && isSameLiveProcess(holder.pid, holder.startTime, holder.bootId) ? 'alive' : 'dead'})`);
  if (existsSync(`${layout.lockFile}.takeover`)) problems.push('I6: takeover guard left behind');
  return problems;
}

/** I3: `status --json` says the installed units are what the current release renders. */
async function checkUnits(root: string, cli: Cli): Promise<string[]> {
  const r = await cli(['status', '--json']);
  if (r.exitCode !== 0 && r.exitCode !== 6) return [`I3: status failed (exit ${r.exitCode}): ${r.stderr.trim()}`];
  const s = JSON.parse(r.stdout) as { current: string | null; drift: boolean; driftFiles: string[]; currentComplete: boolean };
  const problems: string[] = [];
  if (s.current !== currentOf(root)) problems.push(`I3: status says current ${s.current}, the link says ${currentOf(root)}`);
  if (s.drift) problems.push(`I3: unit drift: ${s.driftFiles.join(', ')}`);
  return problems;
}

/** I7: the next install and rollback succeed, and leave I1-I6 intact. */
async function checkNext(root: string, cli: Cli, versions: string[]): Promise<string[]> {
  for (const version of versions) {
    const install = await cli(['install', version, '--allow-downgrade']);
    if (install.exitCode !== 0) return [`I7: install ${version} exited ${install.exitCode ?? install.signal}: ${install.stderr.trim().split('\n').pop()}`];
    if (currentOf(root) !== version) return [`I7: after install ${version}, current is ${currentOf(root)}`];
  }
  const back = await cli(['rollback']);
  if (back.exitCode !== 0) return [`I7: rollback exited ${back.exitCode ?? back.signal}: ${back.stderr.trim().split('\n').pop()}`];
  return checkState(root).map((p) => `I7 (after install + rollback): ${p}`);
}

/** Every invariant; call after `recover` (the next command's recovery) has run. */
export async function checkInvariants(root: string, cli: Cli, opts: InvariantOptions = {}): Promise<string[]> {
  const problems = [...checkState(root, opts), ...(await checkUnits(root, cli))];
  if (problems.length === 0 && opts.next) problems.push(...(await checkNext(root, cli, opts.next.install)));
  return problems;
}
