/**
 * Checks every line of a release's unit files, and writes the tool's policy drop-in, read last.
 * Never lets a release's own files decide user, capabilities or privileges: the drop-in sets them.
 */

import { DEVICE } from '../layout.js';
import { IntegrityError } from '../errors.js';
import {
  ALLOWED_CAPABILITIES,
  ALLOWED_DEPENDENCIES,
  ALLOWED_EXEC_PREFIX,
  CAPABILITY_KEYS,
  DEPENDENCY_KEYS,
  EXEC_KEYS,
  isFalse,
  OUR_UNIT,
  PATH_LOOSENING_KEYS,
  REFUSED,
  SANDBOX_KEYS,
  SERVICE_USER,
  VALUE_RULES,
} from './unit-policy-rules.js';

/**
 * The unit policy: every file a release ships for a unit is checked line by line (a refusal names
 * the file and line, exit 4, before anything changes), and every service gets the tool's policy
 * drop-in last, which sets what grants privilege whatever the files before it say.
 */

/** Sorts after every drop-in a release may ship (checkDropinOrder refuses the others). */
export const POLICY_DROPIN = 'zz-smolotchi-policy.conf';

export interface Directive {
  section: string;
  key: string;
  value: string;
  line: number;
}

/** One file of a unit, in the order systemd reads them (unit file, then drop-ins by name). */
export interface UnitSource {
  shown: string;
  text: string;
}

export interface UnitVerdict {
  ambient: string[];
  bounding: string[];
  /** Sandboxing the release turned off for this unit, e.g. `ProtectHome=false (dropins/x.d/20.conf:3)`. */
  loosened: string[];
}

/** systemd's unit file syntax: sections, `Key=value`, comments, trailing-backslash continuations. */
export function parseUnit(text: string): Directive[] {
  const out: Directive[] = [];
  const lines = text.split('\n');
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!.trim();
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i]!.trim()}`;
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) section = header[1]!;
    else if (line.includes('=')) {
      const eq = line.indexOf('=');
      out.push({ section, key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim(), line: start + 1 });
    }
  }
  return out;
}

function refuse(source: UnitSource, d: Directive, why: string): never {
  throw new IntegrityError(
    `release unit ${source.shown}:${d.line}: ${d.key}=${d.value} refused: ${why}`,
    'a release defines its units, the tool defines their privileges (README: Units and release code)',
  );
}

/** The capability names of one assignment; `~` (everything but) is never allowed. */
function capabilities(source: UnitSource, d: Directive, unit: string): string[] {
  if (d.value.startsWith('~')) refuse(source, d, 'an inverted list grants every other capability');
  const caps = d.value.split(/\s+/).filter(Boolean).map((c) => c.toUpperCase());
  const allowed = ALLOWED_CAPABILITIES[unit] ?? [];
  const extra = caps.filter((c) => !allowed.includes(c));
  if (extra.length > 0) refuse(source, d, `${unit} may hold ${allowed.length ? allowed.join(', ') : 'no capabilities'}`);
  return caps;
}

/** Check one file against the policy; throws on the first directive that asks for more. */
export function checkDirective(source: UnitSource, d: Directive, unit: string): void {
  if (REFUSED[d.key]) refuse(source, d, REFUSED[d.key]!);
  const rule = VALUE_RULES[d.key];
  if (rule && !rule.ok(d.value)) refuse(source, d, rule.why);
  if (EXEC_KEYS.has(d.key)) {
    // systemd reads ` ; ` as the start of another command line, each with its own prefixes.
    const commands = d.value.split(/\s+;\s+/).filter(Boolean);
    for (const command of commands) {
      const prefix = /^[-:+!@|]*/.exec(command)![0];
      if (!ALLOWED_EXEC_PREFIX.test(prefix)) refuse(source, d, `the ${prefix} prefix runs the command with more privileges or another name`);
    }
  }
  if (DEPENDENCY_KEYS.has(d.key)) {
    const foreign = d.value.split(/\s+/).filter((u) => u && !OUR_UNIT.test(u) && !ALLOWED_DEPENDENCIES.has(u));
    if (foreign.length > 0) refuse(source, d, `a release may only tie its units to smolotchi-* units and ${[...ALLOWED_DEPENDENCIES].join(', ')}`);
  }
  if (CAPABILITY_KEYS.has(d.key)) capabilities(source, d, unit);
}

/**
 * Check every file of a unit, then work out what systemd will make of them: the capabilities
 * (an empty assignment resets, others add) and the sandboxing left turned off at the end.
 */
export function judgeUnit(unit: string, sources: UnitSource[]): UnitVerdict {
  const caps: Record<string, string[] | null> = { AmbientCapabilities: null, CapabilityBoundingSet: null };
  const last = new Map<string, string>();
  const paths: string[] = [];
  for (const source of sources) {
    for (const d of parseUnit(source.text)) {
      checkDirective(source, d, unit);
      const where = `${source.shown}:${d.line}`;
      if (CAPABILITY_KEYS.has(d.key)) caps[d.key] = d.value === '' ? [] : [...(caps[d.key] ?? []), ...capabilities(source, d, unit)];
      if (d.section === 'Service' && SANDBOX_KEYS.has(d.key)) last.set(d.key, `${d.key}=${d.value} (${where})`);
      if (d.section === 'Service' && PATH_LOOSENING_KEYS.has(d.key)) {
        for (const p of d.value.split(/\s+/).filter((x) => x && !BASELINE_WRITABLE.includes(x.replace(/^-/, '')))) paths.push(`${d.key}=${p} (${where})`);
      }
    }
  }
  const loosened = [...last.values()].filter((v) => isFalse(v.slice(v.indexOf('=') + 1).split(' ')[0]!) || /^ProtectHome=(read-only|tmpfs) /.test(v));
  const ambient = [...new Set(caps.AmbientCapabilities ?? [])].sort();
  // Never assigned: systemd's default is every capability; ours is what the unit asked for, no more.
  const bounding = [...new Set(caps.CapabilityBoundingSet ?? ambient)].sort();
  return { ambient: ambient.filter((c) => bounding.includes(c)), bounding, loosened: [...loosened, ...paths] };
}

/** Folders the baseline hardening already makes writable: naming them again loosens nothing. */
const BASELINE_WRITABLE: string[] = [DEVICE.stateDir, DEVICE.runDir];

/**
 * The tool's drop-in, read last: what grants privilege is set here, whatever came before (an
 * empty assignment first clears every earlier one of a list-valued setting).
 */
export function policyDropin(verdict: UnitVerdict): string {
  return [
    '# Generated by smolotchi-release, read after every other drop-in: a release defines its units,',
    '# the tool defines their privileges. See README "Units and release code".',
    '[Service]',
    `User=${SERVICE_USER}`,
    `Group=${SERVICE_USER}`,
    'DynamicUser=no',
    'SupplementaryGroups=',
    'NoNewPrivileges=yes',
    'RestrictSUIDSGID=yes',
    'RestrictNamespaces=yes',
    'ProtectSystem=strict',
    'CapabilityBoundingSet=',
    ...(verdict.bounding.length ? [`CapabilityBoundingSet=${verdict.bounding.join(' ')}`] : []),
    'AmbientCapabilities=',
    ...(verdict.ambient.length ? [`AmbientCapabilities=${verdict.ambient.join(' ')}`] : []),
    '# Python never imports from the working directory (/var/lib/smolotchi is the app\'s to write);',
    '# the release comes from the current link alone.',
    'Environment=PYTHONSAFEPATH=1',
    `Environment=PYTHONPATH=${DEVICE.currentLink}`,
    '# The tool\'s own history sits inside the app\'s state folder: a mount over it means no unit',
    '# can read it or rename it away between the tool\'s ownership check and its open.',
    `InaccessiblePaths=-${DEVICE.stateDir}/release`,
    '# Stopping a unit must not delete the app\'s runtime folders (its locks live there).',
    'RuntimeDirectoryPreserve=yes',
    '',
  ].join('\n');
}
