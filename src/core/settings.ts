/**
 * Operator settings: defaults, then /etc/smolotchi/env, then SMOLOTCHI_RELEASE_*, then flags.
 * Never reads an env file someone else could change (owner, mode, link), nor accepts unknown keys.
 */

import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ProfileSetting } from './build/device-profile.js';
import { IntegrityError, UsageError } from './errors.js';
import { checkOwnerAndMode } from './ownership.js';

// The --source-kind setting; telling a source's kind from its text (or by asking) is build/source-kind.ts.
export type SourceKind = 'git' | 'tarball';

export type SourceKindSetting = SourceKind | 'auto';

export function parseSourceKind(value: string, origin: string): SourceKindSetting {
  if (value === 'git' || value === 'tarball' || value === 'auto') return value;
  throw new UsageError(`${origin}: expected git, tarball or auto, got ${JSON.stringify(value)}`);
}

/** Operator settings: /etc/smolotchi/env (shared with the app), flags winning over the file. */
export interface Settings {
  source: string | null;
  /** git, tarball, or auto (from the source's text, else asking an http(s) URL whether it speaks git). */
  sourceKind: SourceKindSetting;
  keep: number;
  display: boolean;
  coreNet: boolean;
  python: string;
  requirementFiles: string[];
  /** pyproject extras; null: the defaults (web, core, display when enabled) the release has. */
  extras: string[] | null;
  profile: ProfileSetting;
  /** The app's databases (device paths): SMOLOTCHI_DB, then SMOLOTCHI_RELEASE_DATA_DBS. */
  appDb: string;
  dataDbs: string[];
  /** Snapshot the app's databases before every switch (and restore them when a gate fails). */
  dataSnapshots: boolean;
  webHost: string;
  webPort: number;
  settleSeconds: number;
  startTimeoutSeconds: number;
  httpTimeoutSeconds: number;
  healthCheckTimeoutSeconds: number;
  httpCheck: boolean;
}

export const DEFAULT_SETTINGS: Settings = {
  source: null,
  sourceKind: 'auto',
  keep: 3,
  display: false,
  coreNet: false,
  // The system interpreter: a venv links to its base, and services cannot reach /root or /home.
  python: '/usr/bin/python3',
  requirementFiles: [],
  extras: null,
  profile: 'auto',
  appDb: '/var/lib/smolotchi/events.db',
  dataDbs: [],
  dataSnapshots: true,
  webHost: '127.0.0.1',
  webPort: 8080,
  settleSeconds: 5,
  startTimeoutSeconds: 60,
  httpTimeoutSeconds: 20,
  healthCheckTimeoutSeconds: 30,
  httpCheck: true,
};

type Parser = (value: string, key: string) => Partial<Settings>;

const bool = (field: 'display' | 'coreNet' | 'httpCheck' | 'dataSnapshots'): Parser => (v, key) => {
  if (/^(1|yes|true|on)$/i.test(v)) return { [field]: true };
  if (/^(0|no|false|off)$/i.test(v)) return { [field]: false };
  throw new UsageError(`${key}: expected yes/no (1/0), got ${JSON.stringify(v)}`);
};

const int = (field: keyof Settings, min: number, max: number): Parser => (v, key) => {
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new UsageError(`${key}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return { [field]: Number(v) };
};

const list = (field: 'requirementFiles' | 'extras', pattern: RegExp): Parser => (v, key) => {
  const items = v.split(/[,\s]+/).filter(Boolean);
  // Names end up as paths inside the release: no absolute paths, no climbing out of it.
  for (const item of items) {
    if (!pattern.test(item) || item.split('/').includes('..')) throw new UsageError(`${key}: invalid entry ${JSON.stringify(item)}`);
  }
  return { [field]: items };
};

/**
 * A database the tool snapshots and restores as root: an absolute, normalized device path of a
 * plain file name, so a setting cannot aim the restore at a folder or climb out with '..'.
 */
function dbPath(v: string, key: string): string {
  if (!v.startsWith('/') || path.posix.normalize(v) !== v || v.endsWith('/') || /[\0\n%]/.test(v)) {
    throw new UsageError(`${key}: expected an absolute, normalized path to a database file, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Our keys. Other SMOLOTCHI_* keys belong to the app and are passed over. */
const RELEASE_KEYS: Record<string, Parser> = {
  SMOLOTCHI_RELEASE_SOURCE: (v, key) => {
    // A source starting with '-' could be read as an option by git.
    if (v.startsWith('-')) throw new UsageError(`${key}: a source may not start with '-'`);
    return { source: v || null };
  },
  SMOLOTCHI_RELEASE_SOURCE_KIND: (v, key) => ({ sourceKind: parseSourceKind(v, key) }),
  SMOLOTCHI_RELEASE_KEEP: int('keep', 1, 100),
  SMOLOTCHI_RELEASE_DISPLAY: bool('display'),
  SMOLOTCHI_RELEASE_CORE_NET: bool('coreNet'),
  SMOLOTCHI_RELEASE_PYTHON: (v, key) => {
    if (!v.startsWith('/')) throw new UsageError(`${key}: must be an absolute path to an interpreter`);
    return { python: v };
  },
  SMOLOTCHI_RELEASE_REQUIREMENTS: list('requirementFiles', /^[A-Za-z0-9_.][A-Za-z0-9_./-]*$/),
  SMOLOTCHI_RELEASE_EXTRAS: list('extras', /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/),
  SMOLOTCHI_RELEASE_PROFILE: (v, key) => {
    if (v !== 'auto' && v !== 'pi' && v !== 'generic') throw new UsageError(`${key}: expected auto, pi or generic, got ${JSON.stringify(v)}`);
    return { profile: v };
  },
  SMOLOTCHI_RELEASE_DATA_DBS: (v, key) => ({ dataDbs: v.split(/[,\s]+/).filter(Boolean).map((p) => dbPath(p, key)) }),
  SMOLOTCHI_RELEASE_DATA_SNAPSHOTS: bool('dataSnapshots'),
  SMOLOTCHI_RELEASE_SETTLE_SECONDS: int('settleSeconds', 0, 3600),
  SMOLOTCHI_RELEASE_START_TIMEOUT: int('startTimeoutSeconds', 1, 3600),
  SMOLOTCHI_RELEASE_HTTP_TIMEOUT: int('httpTimeoutSeconds', 1, 3600),
  SMOLOTCHI_RELEASE_HEALTH_CHECK_TIMEOUT: int('healthCheckTimeoutSeconds', 1, 3600),
  SMOLOTCHI_RELEASE_HTTP_CHECK: bool('httpCheck'),
};

/** App keys we read too, because the health gate must probe where the web UI really listens. */
const APP_KEYS: Record<string, Parser> = {
  SMOLOTCHI_WEB_HOST: (v, key) => {
    if (!/^[A-Za-z0-9.:[\]-]{1,253}$/.test(v)) throw new UsageError(`${key}: not a host name or address: ${JSON.stringify(v)}`);
    return { webHost: v };
  },
  SMOLOTCHI_WEB_PORT: int('webPort', 1, 65535),
  // The app's database: snapshotted before a switch, restored when a gate fails.
  SMOLOTCHI_DB: (v, key) => ({ appDb: dbPath(v, key) }),
};

/** The keys of the tool's own settings, in table order (the env file template lists them all). */
export const RELEASE_SETTING_KEYS = (): string[] => Object.keys(RELEASE_KEYS);
/** The app's keys the tool reads too. */
export const APP_SETTING_KEYS = (): string[] => Object.keys(APP_KEYS);

/** Parse KEY=VALUE lines the way systemd's EnvironmentFile= does (comments, optional quotes). */
export function parseEnvFile(text: string, origin = 'env file'): Map<string, string> {
  const out = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new UsageError(`${origin}:${index + 1}: not KEY=VALUE: ${JSON.stringify(raw.slice(0, 60))}`);
    let value = m[2]!;
    const quoted = /^(["'])(.*)\1$/.exec(value);
    if (quoted) value = quoted[2]!;
    else if (/["']/.test(value)) throw new UsageError(`${origin}:${index + 1}: ${m[1]}: unbalanced quotes`);
    out.set(m[1]!, value);
  });
  return out;
}

/**
 * Turn KEY=VALUE pairs into settings; unknown SMOLOTCHI_RELEASE_* keys are errors naming the key.
 * `releaseKeysOnly`: the process environment may set our keys, never the app's (those are the file's).
 */
export function settingsFromEnv(pairs: Map<string, string>, base: Settings = DEFAULT_SETTINGS, origin = '', releaseKeysOnly = false): Settings {
  let settings: Settings = { ...base };
  for (const [key, value] of pairs) {
    const parser = RELEASE_KEYS[key] ?? (releaseKeysOnly ? undefined : APP_KEYS[key]);
    if (parser) settings = { ...settings, ...parser(value, key) };
    else if (key.startsWith('SMOLOTCHI_RELEASE_')) {
      throw new UsageError(`unknown setting ${key}${origin}`, `known settings: ${Object.keys(RELEASE_KEYS).join(', ')}`);
    }
  }
  return settings;
}

const ENV_HINT = 'it names the interpreter and the sources root uses: it and /etc/smolotchi must be root-owned and not writable by group or others (chown root:root, chmod go-w)';

/**
 * The env file's text, or '' when there is none. It decides which interpreter and which source
 * root uses, so it and its folder must be root's (or, in a sandbox, the invoking user's) and
 * writable by nobody else, and a link in its place is refused (exit 4).
 */
export function readEnvFile(envFile: string): string {
  const dir = path.dirname(envFile);
  try {
    const st = lstatSync(dir);
    if (!st.isDirectory()) throw new IntegrityError(`${dir} is a symlink or not a folder`, ENV_HINT);
    checkOwnerAndMode(st, dir, ENV_HINT);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
  let fd: number;
  try {
    fd = openSync(envFile, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return '';
    if (code === 'ELOOP') throw new IntegrityError(`${envFile} is a symlink`, ENV_HINT);
    throw new UsageError(`cannot read ${envFile}: ${(err as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new IntegrityError(`${envFile} is not a regular file`, ENV_HINT);
    checkOwnerAndMode(st, envFile, ENV_HINT);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** Our keys as set in the process environment (`SMOLOTCHI_RELEASE_SOURCE=... smolotchi release ...`). */
function releaseKeysOf(env: NodeJS.ProcessEnv): Map<string, string> {
  return new Map(Object.entries(env).filter((e): e is [string, string] => e[0].startsWith('SMOLOTCHI_RELEASE_') && e[1] !== undefined));
}

/** Settings = defaults (`base`), then the env file, then the process environment, then flags (`overrides`). */
export function loadSettings(envFile: string, overrides: Partial<Settings> = {}, base: Settings = DEFAULT_SETTINGS, env: NodeJS.ProcessEnv = {}): Settings {
  const text = readEnvFile(envFile);
  const fromFile = settingsFromEnv(parseEnvFile(text, envFile), base);
  const fromEnv = settingsFromEnv(releaseKeysOf(env), fromFile, ' (in the environment)', true);
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return { ...fromEnv, ...defined };
}

/** Validate a flag value with the same rules as its env-file key. */
export function parseSettingValue(key: string, value: string): Partial<Settings> {
  const parser = RELEASE_KEYS[key] ?? APP_KEYS[key];
  if (!parser) throw new UsageError(`unknown setting ${key}`);
  return parser(value, key);
}
