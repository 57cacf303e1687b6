/**
 * Every flag a command takes, declared once: commander builds help and errors from these
 * (src/cli/program.ts), the quick parser reads well-formed command lines from them
 * (src/cli/quick-parse.ts). Never reads the env file or the environment, and never loads commander.
 */

import { UsageError } from '../core/errors.js';
import type { Settings } from '../core/settings.js';

/** Parsed options of one command, its own and the shared ones (commander's optsWithGlobals). */
export interface CliOptions {
  root?: string;
  systemctl?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  color?: boolean;
  wait?: boolean;
  waitSeconds?: number;
  [key: string]: unknown;
}

/** A value a flag refuses; commander words it as "option '--x <n>' argument 'v' is invalid. <message>". */
export class InvalidFlagValue extends Error {}

/** One flag as commander spells it: `--source <source>`, `-q, --quiet`, `--no-color`. */
export interface FlagSpec {
  flags: string;
  /** Absent: accepted but never shown in help. */
  description?: string;
  choices?: readonly string[];
  /** The value as the command sees it; throws InvalidFlagValue for a value it refuses. */
  parse?: (value: string) => number;
  required?: boolean;
  hidden?: boolean;
  group?: string;
}

export const positiveInt = (name: string, min = 0, max = 86_400) => (value: string): number => {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new InvalidFlagValue(`${name} must be a whole number from ${min} to ${max}`);
  }
  return Number(value);
};

export const GLOBAL_GROUP = 'Global options:';
export const SHARED_GROUP = 'Deploy options (services, lock, health gate):';

/** Flags every command takes, before or after its name: `smolotchi release status --root /tmp/x`. */
export function globalFlags(opts: { root: boolean }): FlagSpec[] {
  // Accepted everywhere (one command-line template serves every command) but shown only where it acts.
  return [
    { flags: '--root <dir>', description: 'take every absolute path under DIR (sandbox, like DESTDIR)', hidden: !opts.root },
    { flags: '--json', description: 'machine-readable output (see schemas/); errors too' },
    { flags: '-q, --quiet', description: 'print only errors on stderr' },
    { flags: '-v, --verbose', description: "also print pip's output and every systemctl call" },
    { flags: '--no-color', description: 'no colours (also NO_COLOR=1; FORCE_COLOR=1 forces them)' },
  ].map((f) => ({ ...f, group: GLOBAL_GROUP }));
}

/** `-h, --help` on every level, shown with the globals. */
export const HELP_FLAG: FlagSpec = { flags: '-h, --help', description: 'show this help', group: GLOBAL_GROUP };

/** Shown on the commands that call systemctl; accepted (and ignored) by the others for the same reason as --root. */
export function systemctlFlag(used: boolean): FlagSpec {
  return { flags: '--systemctl <path>', description: 'systemctl binary to call (also SMOLOTCHI_SYSTEMCTL)', group: SHARED_GROUP, hidden: !used };
}

/**
 * `--wait` alone, or `--wait=SECONDS`. An optional value after a space would swallow the next word
 * (`--wait 1.3.0` took the version for seconds), so `--wait=N` is rewritten to --wait-seconds
 * before any parser sees it (see normalizeArgv).
 */
export const WAIT_FLAGS: FlagSpec[] = [
  { flags: '--wait', description: 'wait for the release lock instead of exiting 75 (600 s; --wait=SECONDS)', group: SHARED_GROUP },
  { flags: '--wait-seconds <seconds>', parse: positiveInt('--wait', 0, 86_400), hidden: true },
];

const gate = (flag: string, what: string, min: number): FlagSpec =>
  ({ flags: `${flag} <seconds>`, description: `health gate: ${what}`, parse: positiveInt(flag, min, 3600), group: SHARED_GROUP });

export const GATE_FLAGS: FlagSpec[] = [
  gate('--settle', 'how long units must stay up', 0),
  gate('--start-timeout', 'how long units may take to become active', 1),
  gate('--http-timeout', 'how long the web UI may take to answer', 1),
  gate('--health-check-timeout', "limit for the release's packaging/health-check", 1),
];

/** A command's flags in help order: its own, then the shared ones, then the global ones. */
export function commandFlags(spec: { options?: FlagSpec[]; uses: { root?: boolean; systemctl?: boolean; wait?: boolean; gate?: boolean } }): FlagSpec[] {
  return [
    ...(spec.options ?? []),
    systemctlFlag(Boolean(spec.uses.systemctl)),
    ...(spec.uses.wait ? WAIT_FLAGS : []),
    ...(spec.uses.gate ? GATE_FLAGS : []),
    ...globalFlags({ root: spec.uses.root !== false }),
  ];
}

export function waitSeconds(o: CliOptions): number | undefined {
  if (o.waitSeconds !== undefined) return o.waitSeconds;
  return o.wait ? 600 : undefined;
}

export function settingsOverrides(o: CliOptions): Partial<Settings> {
  return {
    settleSeconds: o.settle as number | undefined,
    startTimeoutSeconds: o.startTimeout as number | undefined,
    httpTimeoutSeconds: o.httpTimeout as number | undefined,
    healthCheckTimeoutSeconds: o.healthCheckTimeout as number | undefined,
  };
}

/**
 * argv as commander should see it: `--wait=N` becomes `--wait-seconds=N`; `--wait N` (a number
 * after a space) is refused, since N would otherwise be read as a version or an extra argument.
 */
export function normalizeArgv(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return [...out, ...argv.slice(i)];
    if (a.startsWith('--wait=')) {
      out.push(`--wait-seconds=${a.slice('--wait='.length)}`);
      continue;
    }
    if (a === '--wait' && /^\d+$/.test(argv[i + 1] ?? '')) {
      throw new UsageError(`--wait takes its seconds after an equals sign`, `write --wait=${argv[i + 1]} (or --wait alone for 600 s)`);
    }
    if (a.startsWith('--wait-seconds')) throw new UsageError(`unknown option '${a.split('=')[0]}'`, 'use --wait or --wait=SECONDS');
    out.push(a);
  }
  return out;
}
