/**
 * Reads a release's (or the bundled) packaging/systemd/: units, shared and per-unit drop-ins.
 * Never accepts a unit under a foreign name, nor a drop-in read after the tool's policy.
 */

import { lstatSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { IntegrityError, ReleaseError } from '../errors.js';
import { OPERATOR_DROPIN, TOOL_UNIT, UNIT_NAME } from './unit-files.js';
import { POLICY_DROPIN, type UnitSource } from './unit-policy.js';
import { isDirectorySync } from '../fsutil.js';

export const EXECSTART_DROPIN = '05-venv-execstart.conf';
/** The bundled hardening, read first: a release's own drop-ins may loosen its sandboxing, never its privileges. */
export const BASELINE_DROPIN = '00-smolotchi-hardening.conf';
const RESERVED_DROPINS = new Set([EXECSTART_DROPIN, OPERATOR_DROPIN, BASELINE_DROPIN, POLICY_DROPIN]);
const DROPIN_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*\.conf$/;
// Anything a release ships with one of these suffixes is a unit and must carry one of our names.
const UNIT_SUFFIX = /\.(?:service|socket|timer|path|mount|automount|swap|target|slice|scope|device)$/;

/** A release may only ship units under our names: it must not replace unrelated units or escape the unit dir. */
export function assertReleaseUnitName(name: string): void {
  if (!UNIT_NAME.test(name)) {
    throw new IntegrityError(`release unit template packaging/systemd/${JSON.stringify(name).slice(1, -1)} refused: names must match smolotchi-*.service or .timer`);
  }
  if (name === TOOL_UNIT) throw new IntegrityError(`release unit template ${name} refused: that unit belongs to the release tool`);
}

export interface TemplateSet {
  units: Map<string, string>;
  /** dropins/*.conf, applied to every service (or to one unit, see appliesTo). */
  shared: Map<string, string>;
  /** dropins/<unit>.d/*.conf */
  perUnit: Map<string, Map<string, string>>;
}

// Synchronous reads: a dozen small files per render, two renders per rollback; a thread-pool round
// trip each cost more than the reads themselves.

/** Read a template file; a symlink is followed only while it stays inside the template tree. */
function readTemplate(root: string, file: string): string {
  const info = lstatSync(file);
  if (info.isSymbolicLink()) {
    const [realRoot, target] = [realpathSync(root), realpathSync(file)];
    if (!target.startsWith(realRoot + path.sep)) throw new ReleaseError(`unit template ${file} links outside ${root}`);
  }
  if (!statSync(file).isFile()) throw new ReleaseError(`unit template ${file} is not a regular file`);
  return readFileSync(file, 'utf8');
}

export async function readTemplateSet(dir: string, fromRelease: boolean): Promise<TemplateSet> {
  const set: TemplateSet = { units: new Map(), shared: new Map(), perUnit: new Map() };
  for (const name of readdirSync(dir).sort()) {
    if (!UNIT_SUFFIX.test(name)) continue;
    if (fromRelease) assertReleaseUnitName(name);
    else if (!UNIT_NAME.test(name)) continue;
    set.units.set(name, readTemplate(dir, path.join(dir, name)));
  }
  const dropins = path.join(dir, 'dropins');
  if (!isDirectorySync(dropins)) return set;
  for (const name of readdirSync(dropins).sort()) {
    const full = path.join(dropins, name);
    if (name.endsWith('.d') && isDirectorySync(full)) {
      const unit = name.slice(0, -2);
      if (fromRelease) assertReleaseUnitName(unit);
      const confs = new Map<string, string>();
      for (const conf of readdirSync(full).sort()) {
        if (conf.endsWith('.conf')) confs.set(checkDropinName(conf, `${name}/${conf}`), readTemplate(dir, path.join(full, conf)));
      }
      set.perUnit.set(unit, confs);
    } else if (name.endsWith('.conf')) {
      set.shared.set(checkDropinName(name, name), readTemplate(dir, full));
    }
  }
  return set;
}

function checkDropinName(name: string, shown: string): string {
  if (!DROPIN_NAME.test(name) || RESERVED_DROPINS.has(name)) {
    throw new IntegrityError(`drop-in dropins/${shown} refused: reserved or invalid name`);
  }
  // systemd reads drop-ins in name order: the tool's policy must be read last.
  if (name > POLICY_DROPIN) throw new IntegrityError(`drop-in dropins/${shown} refused: its name must sort before ${POLICY_DROPIN}`);
  return name;
}

/**
 * A shared drop-in whose name ends in a unit's short name (the app's `10-hardening-prune.conf`)
 * belongs to that unit only; the others go to every service.
 */
function appliesTo(dropin: string, unit: string, allUnits: string[]): boolean {
  const stem = dropin.slice(0, -'.conf'.length);
  const owner = allUnits
    .map((u) => u.replace(/^smolotchi-/, '').replace(/\.(service|timer)$/, ''))
    .filter((short) => stem.endsWith(`-${short}`))
    .sort((a, b) => b.length - a.length)[0];
  return owner === undefined ? true : unit === `smolotchi-${owner}.service`;
}

/** The drop-ins of a release's (or the bundled) templates that apply to `unit`, by name. */
export function templateDropins(set: TemplateSet, unit: string): Map<string, string> {
  const dropins = new Map<string, string>();
  if (unit.endsWith('.service')) {
    for (const [name, content] of set.shared) if (appliesTo(name, unit, [...set.units.keys()])) dropins.set(name, content);
  }
  for (const [name, content] of set.perUnit.get(unit) ?? []) dropins.set(name, content);
  return dropins;
}

/** The files systemd will read for a unit from its templates, in its order, named as the release names them. */
export function templateSources(set: TemplateSet, unit: string, fromRelease: boolean): UnitSource[] {
  const prefix = fromRelease ? 'packaging/systemd/' : 'bundled ';
  const dropins = [...templateDropins(set, unit)].sort(([a], [b]) => (a < b ? -1 : 1));
  const where = (name: string) => (set.perUnit.get(unit)?.has(name) ? `dropins/${unit}.d/${name}` : `dropins/${name}`);
  return [{ shown: `${prefix}${unit}`, text: set.units.get(unit) ?? '' }, ...dropins.map(([name, text]) => ({ shown: `${prefix}${where(name)}`, text }))];
}

