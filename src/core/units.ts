import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { IntegrityError, ReleaseError, UsageError } from './errors.js';
import { isDirectory } from './fsutil.js';
import { DEVICE } from './layout.js';
import { packageRoot } from './package-root.js';
import { byPath, OPERATOR_DROPIN, TOOL_UNIT, UNIT_NAME } from './unit-files.js';
import { judgeUnit, POLICY_DROPIN, policyDropin, type UnitSource, type UnitVerdict } from './unit-policy.js';

export { diffUnits, installChanged, readInstalledUnits, writeUnits, OPERATOR_DROPIN, TOOL_UNIT, UNIT_NAME, type UnitDiff } from './unit-files.js';

export interface UnitOptions {
  display: boolean;
  coreNet: boolean;
  /** Absolute command line for @TOOL@, e.g. '/usr/bin/node /usr/lib/smolotchi/dist/src/cli.js'. */
  toolCommand: string;
}

export interface RenderedFile {
  /** Relative to the unit dir: 'smolotchi-web.service', 'smolotchi-web.service.d/10-hardening.conf'. */
  relPath: string;
  content: string;
}

export interface RenderedUnits {
  source: 'release' | 'bundled';
  files: RenderedFile[];
  /** Every unit installed, the tool's own release-check included. */
  units: string[];
  /** Units to (re)start, in dependency order. */
  startOrder: string[];
  tmpfiles: string;
  /** Per unit, the sandboxing its release turned off (empty units left out). */
  loosened: Record<string, string[]>;
  /** sha256 over every file's relPath and content. */
  templateHash: string;
}

export const EXECSTART_DROPIN = '05-venv-execstart.conf';
/** The bundled hardening, read first: a release's own drop-ins may loosen its sandboxing, never its privileges. */
export const BASELINE_DROPIN = '00-smolotchi-hardening.conf';
const RESERVED_DROPINS = new Set([EXECSTART_DROPIN, OPERATOR_DROPIN, BASELINE_DROPIN, POLICY_DROPIN]);
const DROPIN_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*\.conf$/;
// Anything a release ships with one of these suffixes is a unit and must carry one of our names.
const UNIT_SUFFIX = /\.(?:service|socket|timer|path|mount|automount|swap|target|slice|scope|device)$/;

const CORE = 'smolotchi-core.service';
const CORE_NET = 'smolotchi-core-net.service';
const DISPLAY = 'smolotchi-display.service';

/** The app's entry points (the `/usr/local/bin/smolotchi <cmd>` wrapper is not installed). */
const APP_COMMANDS: Record<string, string> = {
  [CORE]: '-m smolotchi.cli core',
  [CORE_NET]: '-m smolotchi.cli core',
  'smolotchi-web.service': '-m smolotchi.cli web',
  'smolotchi-ai.service': '-m smolotchi.ai.worker --loop',
  [DISPLAY]: '-m smolotchi.cli display',
  'smolotchi-prune.service': '-m smolotchi.cli prune',
};
const START_RANK: Record<string, number> = { [CORE]: 0, [CORE_NET]: 0, 'smolotchi-ai.service': 1, 'smolotchi-web.service': 2, [DISPLAY]: 3 };

/** The tool's own packaging/ folder, from src/ under vitest as from dist/src/ after tsc. */
export function bundledPackagingDir(): string {
  return path.join(packageRoot(), 'packaging');
}

/** A release may only ship units under our names: it must not replace unrelated units or escape the unit dir. */
export function assertReleaseUnitName(name: string): void {
  if (!UNIT_NAME.test(name)) {
    throw new IntegrityError(`release unit template ${JSON.stringify(name)} refused: names must match smolotchi-*.service or .timer`);
  }
  if (name === TOOL_UNIT) throw new IntegrityError(`release unit template ${name} refused: that unit belongs to the release tool`);
}

interface TemplateSet {
  units: Map<string, string>;
  /** dropins/*.conf, applied to every service (or to one unit, see appliesTo). */
  shared: Map<string, string>;
  /** dropins/<unit>.d/*.conf */
  perUnit: Map<string, Map<string, string>>;
}

/** Read a template file; a symlink is followed only while it stays inside the template tree. */
async function readTemplate(root: string, file: string): Promise<string> {
  const info = await lstat(file);
  if (info.isSymbolicLink()) {
    const [realRoot, target] = await Promise.all([realpath(root), realpath(file)]);
    if (!target.startsWith(realRoot + path.sep)) throw new ReleaseError(`unit template ${file} links outside ${root}`);
  }
  if (!(await stat(file)).isFile()) throw new ReleaseError(`unit template ${file} is not a regular file`);
  return readFile(file, 'utf8');
}

async function readTemplateSet(dir: string, fromRelease: boolean): Promise<TemplateSet> {
  const set: TemplateSet = { units: new Map(), shared: new Map(), perUnit: new Map() };
  for (const name of (await readdir(dir)).sort()) {
    if (!UNIT_SUFFIX.test(name)) continue;
    if (fromRelease) assertReleaseUnitName(name);
    else if (!UNIT_NAME.test(name)) continue;
    set.units.set(name, await readTemplate(dir, path.join(dir, name)));
  }
  const dropins = path.join(dir, 'dropins');
  if (!(await isDirectory(dropins))) return set;
  for (const name of (await readdir(dropins)).sort()) {
    const full = path.join(dropins, name);
    if (name.endsWith('.d') && (await isDirectory(full))) {
      const unit = name.slice(0, -2);
      if (fromRelease) assertReleaseUnitName(unit);
      const confs = new Map<string, string>();
      for (const conf of (await readdir(full)).sort()) {
        if (conf.endsWith('.conf')) confs.set(checkDropinName(conf, `${name}/${conf}`), await readTemplate(dir, path.join(full, conf)));
      }
      set.perUnit.set(unit, confs);
    } else if (name.endsWith('.conf')) {
      set.shared.set(checkDropinName(name, name), await readTemplate(dir, full));
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

/** The app command of a unit: ours for the known units, else translated from the app's wrapper. */
function appCommand(unit: string, template: string): string | null {
  if (APP_COMMANDS[unit]) return APP_COMMANDS[unit];
  const exec = [...template.matchAll(/^\s*ExecStart\s*=\s*[-@:+!]*\/usr\/local\/bin\/smolotchi\s+(\S.*?)\s*$/gm)].pop();
  if (!exec) return null;
  const [cmd, ...rest] = exec[1].split(/\s+/);
  return cmd === 'ai' ? ['-m smolotchi.ai.worker --loop', ...rest].join(' ') : `-m smolotchi.cli ${exec[1]}`;
}

function execStartDropin(command: string): string {
  return [
    '# Generated by smolotchi-release: run the app from the current release and its own venv.',
    '[Service]',
    '# The empty assignment clears the template\'s ExecStart before ours.',
    'ExecStart=',
    '# -P: the working directory (the app\'s own, writable by it) is never on sys.path.',
    `ExecStart=${DEVICE.currentLink}/.venv/bin/python -P ${command}`,
    `WorkingDirectory=${DEVICE.stateDir}`,
    '',
  ].join('\n');
}

/** @TOOL@ lands in an ExecStart= line: absolute, no characters systemd would expand or split oddly. */
function toolLine(command: string): string {
  if (!/^\/[A-Za-z0-9_./@:+=,~ -]*$/.test(command)) {
    throw new UsageError(`tool command ${JSON.stringify(command)} cannot go into a unit`, 'it must be an absolute path (plus plain arguments)');
  }
  return command;
}

function selectUnits(available: string[], options: UnitOptions): string[] {
  for (const [wanted, unit] of [[options.coreNet, CORE_NET], [options.display, DISPLAY]] as const) {
    if (wanted && !available.includes(unit)) throw new ReleaseError(`${unit} is enabled in the settings but the unit templates have none`);
  }
  const skip = new Set([TOOL_UNIT, options.coreNet ? CORE : CORE_NET, ...(options.display ? [] : [DISPLAY])]);
  return available.filter((u) => !skip.has(u));
}

/** Core first, then its dependents; timers last; a service a timer triggers is left to the timer. */
function startOrder(units: string[]): string[] {
  const timers = units.filter((u) => u.endsWith('.timer'));
  const triggered = new Set(timers.map((t) => t.replace(/\.timer$/, '.service')));
  const services = units.filter((u) => u.endsWith('.service') && !triggered.has(u));
  const rank = (u: string) => START_RANK[u] ?? 4;
  services.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
  return [...services, ...timers.sort()];
}

export function hashFiles(files: RenderedFile[]): string {
  const hash = createHash('sha256');
  for (const f of [...files].sort(byPath)) hash.update(`${f.relPath}\0${f.content}\0`);
  return hash.digest('hex');
}

/** The drop-ins of a release's (or the bundled) templates that apply to `unit`, by name. */
function templateDropins(set: TemplateSet, unit: string): Map<string, string> {
  const dropins = new Map<string, string>();
  if (unit.endsWith('.service')) {
    for (const [name, content] of set.shared) if (appliesTo(name, unit, [...set.units.keys()])) dropins.set(name, content);
  }
  for (const [name, content] of set.perUnit.get(unit) ?? []) dropins.set(name, content);
  return dropins;
}

/** The files systemd will read for a unit from its templates, in its order, named as the release names them. */
function templateSources(set: TemplateSet, unit: string, fromRelease: boolean): UnitSource[] {
  const prefix = fromRelease ? 'packaging/systemd/' : 'bundled ';
  const dropins = [...templateDropins(set, unit)].sort(([a], [b]) => (a < b ? -1 : 1));
  const where = (name: string) => (set.perUnit.get(unit)?.has(name) ? `dropins/${unit}.d/${name}` : `dropins/${name}`);
  return [{ shown: `${prefix}${unit}`, text: set.units.get(unit) ?? '' }, ...dropins.map(([name, text]) => ({ shown: `${prefix}${where(name)}`, text }))];
}

/** Baseline hardening first, the venv's ExecStart, the templates' drop-ins, the tool's policy last. */
function unitDropins(set: TemplateSet, unit: string, template: string, verdict: UnitVerdict, baseline: string): Map<string, string> {
  const dropins = new Map<string, string>();
  if (!unit.endsWith('.service')) return templateDropins(set, unit);
  dropins.set(BASELINE_DROPIN, baseline);
  const command = appCommand(unit, template);
  if (command) dropins.set(EXECSTART_DROPIN, execStartDropin(command));
  for (const [name, content] of templateDropins(set, unit)) dropins.set(name, content);
  dropins.set(POLICY_DROPIN, policyDropin(verdict));
  return dropins;
}

/** Render the unit set of a release (its own packaging/systemd/ when present, else the bundled one). */
export async function renderUnits(releaseDir: string | null, bundledDir: string, options: UnitOptions): Promise<RenderedUnits> {
  const tool = toolLine(options.toolCommand);
  const bundledSystemd = path.join(bundledDir, 'systemd');
  const releaseSystemd = releaseDir === null ? null : path.join(releaseDir, 'packaging', 'systemd');
  const fromRelease = releaseSystemd !== null && (await isDirectory(releaseSystemd));
  const set = await readTemplateSet(fromRelease ? releaseSystemd : bundledSystemd, fromRelease);
  const baseline = await readFile(path.join(bundledSystemd, 'hardening.conf'), 'utf8');
  // Every unit the release ships is judged, chosen or not: one that asks for more refuses the release.
  const verdicts = new Map([...set.units.keys()].filter((u) => u !== TOOL_UNIT).map((unit) => [unit, judgeUnit(unit, templateSources(set, unit, fromRelease))]));
  const chosen = selectUnits([...set.units.keys()], options);
  const files: RenderedFile[] = [];
  const loosened: Record<string, string[]> = {};
  for (const unit of chosen) {
    const template = set.units.get(unit) ?? '';
    files.push({ relPath: unit, content: template });
    const verdict = verdicts.get(unit)!;
    for (const [name, content] of unitDropins(set, unit, template, verdict, baseline)) files.push({ relPath: `${unit}.d/${name}`, content });
    if (unit.endsWith('.service') && verdict.loosened.length > 0) loosened[unit] = verdict.loosened;
  }
  const checkUnit = await readFile(path.join(bundledSystemd, TOOL_UNIT), 'utf8');
  files.push({ relPath: TOOL_UNIT, content: checkUnit.replaceAll('@TOOL@', tool) });
  files.sort(byPath);
  return {
    source: fromRelease ? 'release' : 'bundled',
    files,
    units: [...chosen, TOOL_UNIT].sort(),
    startOrder: startOrder(chosen),
    loosened,
    // The tool owns /run/smolotchi (its lock lives there): always the bundled tmpfiles, never a release's.
    tmpfiles: await readFile(path.join(bundledDir, 'tmpfiles', 'smolotchi.conf'), 'utf8'),
    templateHash: hashFiles(files),
  };
}
