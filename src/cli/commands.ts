/**
 * The registry of `smolotchi release` commands: flags, help, exit codes, lazily imported runs.
 * Never runs or prints anything itself: src/cli.ts does, with what is declared here.
 */

import type { Context } from '../core/context.js';
import { ExitCode, type ExitCodeValue } from '../core/exit-codes.js';
import type { CommandResult } from '../render/render.js';
import { positiveInt, waitSeconds, type CliOptions, type FlagSpec } from './flags.js';
import { lazy } from './lazy.js';

/**
 * One `smolotchi release <name>` command: what the program registers, what `--help` shows and
 * what the JSON-schema test iterates over. A new command is one more entry in RELEASE_COMMANDS
 * (plus schemas/<name>.schema.json and a renderer).
 */
export interface CommandSpec {
  name: string;
  /** Positional arguments in commander syntax: '<version>', '[version]'. */
  args?: string;
  summary: string;
  /** Shared flag sets it takes; --root is on by default (keygen and pack never read the device). */
  uses: { root?: boolean; systemctl?: boolean; wait?: boolean; gate?: boolean };
  /** The command's own flags: shown first in its help. */
  options?: FlagSpec[];
  examples: string[];
  exitCodes: ExitCodeValue[];
  run(o: CliOptions, args: string[], ctx: Context): Promise<CommandResult>;
}

const dryRun = (what: string): FlagSpec => ({ flags: '--dry-run', description: what });
const { ok, failed, usage, notFound, integrity, rolledBack, degraded, locked } = ExitCode;

export const RELEASE_COMMANDS: CommandSpec[] = [
  {
    name: 'install',
    args: '<version>',
    summary: 'install <ver|latest|./smolotchi-X.Y.Z.tar.gz>, switch to it and prove it healthy',
    uses: { systemctl: true, wait: true, gate: true },
    options: [
      { flags: '--source <source>', description: 'git URL or path, or a folder/URL of smolotchi-<ver>.tar.gz archives' },
      { flags: '--source-kind <kind>', description: 'what --source is (default: auto, from its text or by asking an http(s) URL)', choices: ['git', 'tarball', 'auto'] },
      dryRun('resolve the version and print the plan, change nothing'),
      { flags: '--force', description: 'install even if marked bad, already current, or its tag moved; take over a lock from another host or boot' },
      { flags: '--allow-downgrade', description: 'install a version older than the current one' },
    ],
    examples: [
      'smolotchi release install 1.4.2 --source https://github.com/161sam/smolotchi.git',
      'smolotchi release install latest --wait=120',
      'smolotchi release install ./smolotchi-1.4.2.tar.gz',
      'smolotchi release install 1.5.0 --dry-run --json',
    ],
    exitCodes: [ok, failed, usage, notFound, integrity, rolledBack, degraded, locked],
    run: async (o, [target], ctx) =>
      (await lazy(import.meta.url, '../commands/install.js', () => import('../commands/install.js'))).install(
        {
          target: target!,
          source: o.source as string | undefined,
          sourceKind: o.sourceKind as 'git' | 'tarball' | 'auto' | undefined,
          dryRun: Boolean(o.dryRun),
          force: Boolean(o.force),
          allowDowngrade: Boolean(o.allowDowngrade),
          waitSeconds: waitSeconds(o),
        },
        ctx,
      ),
  },
  {
    name: 'rollback',
    summary: 'switch back to the last good release (or --to a release on disk)',
    uses: { systemctl: true, wait: true, gate: true },
    options: [
      { flags: '--to <version>', description: 'a complete release already on this device' },
      { flags: '--restore-data', description: "also write back the app's data as the target last left it (newer data is lost)" },
      dryRun('print the plan, change nothing'),
    ],
    examples: ['smolotchi release rollback', 'smolotchi release rollback --to 1.3.0 --settle 10', 'smolotchi release rollback --restore-data'],
    exitCodes: [ok, failed, usage, notFound, rolledBack, degraded, locked],
    run: async (o, _a, ctx) =>
      (await lazy(import.meta.url, '../commands/rollback.js', () => import('../commands/rollback.js'))).rollback(
        { to: o.to as string | undefined, dryRun: Boolean(o.dryRun), waitSeconds: waitSeconds(o), restoreData: Boolean(o.restoreData) },
        ctx,
      ),
  },
  {
    name: 'history',
    summary: 'deploys, newest first',
    uses: {},
    options: [{ flags: '--limit <n>', description: 'how many rows (default 20)', parse: positiveInt('--limit', 1, 10_000) }],
    examples: ['smolotchi release history --limit 10', 'smolotchi release history --json | jq ".deploys[0]"'],
    exitCodes: [ok, usage],
    run: async (o, _a, ctx) => (await lazy(import.meta.url, '../commands/history.js', () => import('../commands/history.js'))).history({ limit: o.limit as number | undefined }, ctx),
  },
  {
    name: 'list',
    summary: 'releases on disk: current, last good, rollback target, bad',
    uses: {},
    examples: ['smolotchi release list', 'smolotchi release list --json'],
    exitCodes: [ok, usage, notFound],
    run: async (_o, _a, ctx) => (await lazy(import.meta.url, '../commands/list.js', () => import('../commands/list.js'))).list({}, ctx),
  },
  {
    name: 'status',
    summary: 'current and last good release, last deploy, degraded state, unit drift, lock holder',
    uses: {},
    examples: ['smolotchi release status', 'smolotchi release status --json || alert "device degraded"'],
    exitCodes: [ok, usage, notFound, degraded],
    run: async (_o, _a, ctx) => (await lazy(import.meta.url, '../commands/status.js', () => import('../commands/status.js'))).status({}, ctx),
  },
  {
    name: 'prune',
    summary: 'remove old releases beyond --keep (never current, last good or rollback target)',
    uses: { systemctl: true, wait: true },
    options: [
      { flags: '--keep <n>', description: 'releases to keep (default: SMOLOTCHI_RELEASE_KEEP, 3)', parse: positiveInt('--keep', 1, 100) },
      dryRun('print what would be removed, change nothing'),
    ],
    examples: ['smolotchi release prune --keep 2 --dry-run', 'smolotchi release prune --keep 2'],
    exitCodes: [ok, failed, usage, locked],
    run: async (o, _a, ctx) =>
      (await lazy(import.meta.url, '../commands/prune.js', () => import('../commands/prune.js'))).prune({ keep: o.keep as number | undefined, dryRun: Boolean(o.dryRun), waitSeconds: waitSeconds(o) }, ctx),
  },
  {
    name: 'recover',
    summary: 'finish or undo an interrupted deploy (runs at boot and before every mutating command)',
    uses: { systemctl: true, wait: true },
    options: [
      { flags: '--boot', description: 'running from the boot-time unit: repair, but do not restart units' },
      { flags: '--force', description: 'take over a release lock left by another host or boot' },
    ],
    examples: [
      'smolotchi release recover',
      'smolotchi release recover --boot    # what smolotchi-release-check.service runs',
      'smolotchi release recover --force   # the lock names another host or boot, and nothing runs there',
    ],
    exitCodes: [ok, failed, integrity, locked],
    run: async (o, _a, ctx) =>
      (await lazy(import.meta.url, '../commands/recover.js', () => import('../commands/recover.js'))).recover({ boot: Boolean(o.boot), force: Boolean(o.force), waitSeconds: waitSeconds(o) }, ctx),
  },
  {
    name: 'verify',
    args: '[version]',
    summary: 're-hash installed releases against their recorded file list and signed manifest',
    uses: {},
    options: [{ flags: '--all', description: 'every complete release on disk (default: the current one)' }],
    examples: ['smolotchi release verify', 'smolotchi release verify 1.3.0', 'smolotchi release verify --all --json'],
    exitCodes: [ok, usage, notFound, integrity],
    run: async (o, [version], ctx) => (await lazy(import.meta.url, '../commands/verify.js', () => import('../commands/verify.js'))).verify({ version, all: Boolean(o.all) }, ctx),
  },
  {
    name: 'init',
    summary: 'prepare a device: the smolotchi user, folders with owners and modes, /etc/smolotchi/env, the boot-time check',
    uses: { systemctl: true, wait: true },
    options: [dryRun('print what would be created or changed, change nothing')],
    examples: ['sudo smolotchi release init --dry-run', 'sudo smolotchi release init && sudo smolotchi release install latest'],
    exitCodes: [ok, failed, usage, locked],
    run: async (o, _a, ctx) => (await lazy(import.meta.url, '../commands/init.js', () => import('../commands/init.js'))).init({ dryRun: Boolean(o.dryRun), waitSeconds: waitSeconds(o) }, ctx),
  },
  {
    name: 'mark',
    args: '<state> <version>',
    summary: 'mark a release good or bad by hand (as `rauc status mark-good|mark-bad`), recorded in the history',
    uses: { wait: true },
    options: [{ flags: '--reason <text>', description: 'why (one line): shown by status, list and history' }],
    examples: ['smolotchi release mark bad 1.4.2 --reason "e-paper display stays blank"', 'smolotchi release mark good 1.4.1'],
    exitCodes: [ok, failed, usage, notFound, locked],
    run: async (o, [state, version], ctx) =>
      (await lazy(import.meta.url, '../commands/mark.js', () => import('../commands/mark.js'))).mark({ state: state!, version: version!, reason: o.reason as string | undefined, waitSeconds: waitSeconds(o) }, ctx),
  },
  {
    name: 'keygen',
    summary: 'make an ed25519 release signing key pair: smolotchi-<keyid>.key (0600) and .pub',
    uses: { root: false },
    options: [{ flags: '--out <dir>', description: 'folder for the two key files', required: true }],
    examples: ['smolotchi release keygen --out ~/smolotchi-keys'],
    exitCodes: [ok, failed, usage],
    run: async (o, _a, ctx) => (await lazy(import.meta.url, '../commands/keygen.js', () => import('../commands/keygen.js'))).keygen({ out: o.out as string }, ctx),
  },
  {
    name: 'pack',
    summary: 'build smolotchi-X.Y.Z.tar.gz from a tag, with its .sha256, signed manifest and signature',
    uses: { root: false },
    options: [
      { flags: '--repo <path|url>', description: 'git repository holding the tag v<ver> or <ver>', required: true },
      { flags: '--version <x.y.z>', description: 'the version to pack', required: true },
      { flags: '--key <file>', description: 'ed25519 private key from `keygen` (mode 0600)', required: true },
      { flags: '--out <dir>', description: 'where to write the four release files (default: .)' },
      { flags: '--wheels <dir>', description: 'wheels to ship in wheels/ for offline venv builds' },
    ],
    examples: ['smolotchi release pack --repo . --version 1.4.2 --key ~/smolotchi-keys/smolotchi-1a2b.key --out dist/'],
    exitCodes: [ok, failed, usage, notFound, integrity],
    run: async (o, _a, ctx) => {
      const { pack } = await lazy(import.meta.url, '../commands/pack.js', () => import('../commands/pack.js'));
      const opts = { repo: o.repo as string, version: o.version as string, key: o.key as string, out: o.out as string | undefined };
      return pack({ ...opts, wheels: o.wheels as string | undefined }, ctx);
    },
  },
];

/** The release command argv names (`... release <name> ...`), for errors found before a parser picks it. */
export function commandNamed(argv: string[], commands: CommandSpec[] = RELEASE_COMMANDS): string | null {
  const at = argv.indexOf('release');
  const word = at < 0 ? undefined : argv[at + 1];
  return commands.some((c) => c.name === word) ? word! : null;
}
