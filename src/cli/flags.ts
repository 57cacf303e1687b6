/**
 * Shared commander flags and their parsers: globals, --systemctl, --wait, gate flags, argv fixes.
 * Never reads the env file or the environment: it only turns argv into option values.
 */

import { InvalidArgumentError, Option, type Command } from './commander.js';
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

export const positiveInt = (name: string, min = 0, max = 86_400) => (value: string): number => {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
  }
  return Number(value);
};

export const GLOBAL_GROUP = 'Global options:';
export const SHARED_GROUP = 'Deploy options (services, lock, health gate):';

/** Flags every command takes, before or after its name: `smolotchi release status --root /tmp/x`. */
export function addGlobalFlags(cmd: Command, opts: { root: boolean }): Command {
  // Accepted everywhere (one command-line template serves every command) but shown only where it acts.
  const root = new Option('--root <dir>', 'take every absolute path under DIR (sandbox, like DESTDIR)');
  const flags = [
    opts.root ? root : root.hideHelp(),
    new Option('--json', 'machine-readable output (see schemas/); errors too'),
    new Option('-q, --quiet', 'print only errors on stderr'),
    new Option('-v, --verbose', "also print pip's output and every systemctl call"),
    new Option('--no-color', 'no colours (also NO_COLOR=1; FORCE_COLOR=1 forces them)'),
  ];
  for (const f of flags) cmd.addOption(f.helpGroup(GLOBAL_GROUP));
  return cmd.addHelpOption(new Option('-h, --help', 'show this help').helpGroup(GLOBAL_GROUP));
}

/** Shown on the commands that call systemctl; accepted (and ignored) by the others for the same reason as --root. */
export function addSystemctlFlag(cmd: Command, used: boolean): Command {
  const flag = new Option('--systemctl <path>', 'systemctl binary to call (also SMOLOTCHI_SYSTEMCTL)').helpGroup(SHARED_GROUP);
  return cmd.addOption(used ? flag : flag.hideHelp());
}

/**
 * `--wait` alone, or `--wait=SECONDS`. An optional value after a space would swallow the next word
 * (`--wait 1.3.0` took the version for seconds), so `--wait=N` is rewritten to --wait-seconds
 * before commander sees it (see normalizeArgv).
 */
export function addWaitFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--wait', 'wait for the release lock instead of exiting 75 (600 s; --wait=SECONDS)').helpGroup(SHARED_GROUP))
    .addOption(new Option('--wait-seconds <seconds>').argParser(positiveInt('--wait', 0, 86_400)).hideHelp());
}

export function addGateFlags(cmd: Command): Command {
  const gate = (flag: string, what: string, min: number) =>
    new Option(`${flag} <seconds>`, `health gate: ${what}`).argParser(positiveInt(flag, min, 3600)).helpGroup(SHARED_GROUP);
  return cmd
    .addOption(gate('--settle', 'how long units must stay up', 0))
    .addOption(gate('--start-timeout', 'how long units may take to become active', 1))
    .addOption(gate('--http-timeout', 'how long the web UI may take to answer', 1))
    .addOption(gate('--health-check-timeout', "limit for the release's packaging/health-check", 1));
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
