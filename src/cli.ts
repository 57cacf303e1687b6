#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ReleaseError, UsageError } from './core/errors.js';
import { ExitCode } from './core/exit-codes.js';
import { TOOL_VERSION } from './core/package-root.js';
import type { Settings } from './core/settings.js';
import type { CommandResult } from './render/render.js';

interface CliOptions {
  root?: string;
  systemctl?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  color?: boolean;
  yes?: boolean;
  wait?: string | boolean;
  [key: string]: unknown;
}

const positiveInt = (name: string, min = 0, max = 86_400) => (value: string): number => {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
  }
  return Number(value);
};

/** Global flags are accepted after the subcommand too: `smolotchi release install 1.2.0 --root /tmp/x`. */
function withGlobals(cmd: Command): Command {
  return cmd
    .option('--root <dir>', 'take every absolute path under DIR (sandbox, like DESTDIR)')
    .option('--systemctl <path>', 'systemctl binary to call')
    .option('--json', 'machine-readable output with schemaVersion')
    .option('-q, --quiet', 'only errors on stderr')
    .option('-v, --verbose', 'debug logging on stderr')
    .option('--no-color', 'no colours (also NO_COLOR)')
    .option('-y, --yes', 'assume yes (nothing asks today; accepted for scripts)');
}

function withWait(cmd: Command): Command {
  return cmd.addOption(new Option('--wait [seconds]', 'wait for the release lock instead of exiting 75 (default 600 s)'));
}

function withGate(cmd: Command): Command {
  return cmd
    .option('--settle <seconds>', 'health gate: how long units must stay up', positiveInt('--settle', 0, 3600))
    .option('--start-timeout <seconds>', 'health gate: how long units may take to become active', positiveInt('--start-timeout', 1, 3600))
    .option('--http-timeout <seconds>', 'health gate: how long the web UI may take to answer', positiveInt('--http-timeout', 1, 3600))
    .option('--health-check-timeout <seconds>', "health gate: limit for the release's packaging/health-check", positiveInt('--health-check-timeout', 1, 3600));
}

function waitSeconds(wait: string | boolean | undefined): number | undefined {
  if (wait === undefined || wait === false) return undefined;
  if (wait === true) return 600;
  return positiveInt('--wait', 0, 86_400)(wait);
}

function settingsOverrides(o: CliOptions): Partial<Settings> {
  return {
    settleSeconds: o.settle as number | undefined,
    startTimeoutSeconds: o.startTimeout as number | undefined,
    httpTimeoutSeconds: o.httpTimeout as number | undefined,
    healthCheckTimeoutSeconds: o.healthCheckTimeout as number | undefined,
  };
}

let pending: Promise<void> = Promise.resolve();

/** Build the context, run one command, print its result; only this file decides the exit code. */
function action(run: (o: CliOptions, args: string[], ctx: import('./core/context.js').Context) => Promise<CommandResult>) {
  return (...argv: unknown[]) => {
    const cmd = argv[argv.length - 1] as Command;
    const args = argv.slice(0, -2).filter((a): a is string => typeof a === 'string');
    const o = cmd.optsWithGlobals() as CliOptions;
    pending = (async () => {
      const { createContext } = await import('./create-context.js');
      // Only `recover` (at boot, or by hand after a malformed-database error) reads every page of the history.
      const fullHistoryCheck = cmd.name() === 'recover';
      const ctx = createContext({ root: o.root, systemctl: o.systemctl, quiet: o.quiet, verbose: o.verbose, fullHistoryCheck }, settingsOverrides(o));
      try {
        const result = await run(o, args, ctx);
        const { renderJson, renderText } = await import('./render/render.js');
        process.stdout.write((o.json ? renderJson(result) : renderText(result)) + '\n');
        process.exitCode = (result as { exitCode?: number }).exitCode ?? ExitCode.ok;
      } finally {
        ctx.close();
      }
    })();
  };
}

function buildProgram(): Command {
  const program = withGlobals(new Command('smolotchi'))
    .description('Atomic, health-gated releases of the smolotchi app')
    .version(TOOL_VERSION)
    .exitOverride()
    // Program options only before `release`: `pack --version X.Y.Z` is pack's, not the tool's -V.
    .enablePositionalOptions()
    .showSuggestionAfterError();
  const release = withGlobals(program.command('release').description('install, switch, roll back and inspect releases')).exitOverride();

  withGate(withWait(withGlobals(release.command('install <version>'))))
    .description('install <ver|latest|./smolotchi-X.Y.Z.tar.gz>, switch to it and prove it healthy')
    .option('--source <source>', 'git URL or path, or a folder/URL of smolotchi-<ver>.tar.gz archives')
    .option('--dry-run', 'print the plan, change nothing')
    .option('--force', 'install even if marked bad, already current, or its tag moved')
    .option('--allow-downgrade', 'install a version older than the current one')
    .action(
      action(async (o, [target], ctx) => {
        const { install } = await import('./commands/install.js');
        return install(
          {
            target: target!,
            source: o.source as string | undefined,
            dryRun: Boolean(o.dryRun),
            force: Boolean(o.force),
            allowDowngrade: Boolean(o.allowDowngrade),
            waitSeconds: waitSeconds(o.wait),
          },
          ctx,
        );
      }),
    );

  withGate(withWait(withGlobals(release.command('rollback'))))
    .description('switch back to the last good release (or --to a release on disk)')
    .option('--to <version>', 'a complete release already on this device')
    .option('--dry-run', 'print the plan, change nothing')
    .action(
      action(async (o, _a, ctx) => {
        const { rollback } = await import('./commands/rollback.js');
        return rollback({ to: o.to as string | undefined, dryRun: Boolean(o.dryRun), waitSeconds: waitSeconds(o.wait) }, ctx);
      }),
    );

  withGlobals(release.command('history'))
    .description('deploys, newest first')
    .option('--limit <n>', 'how many rows', positiveInt('--limit', 1, 10_000))
    .action(
      action(async (o, _a, ctx) => {
        const { history } = await import('./commands/history.js');
        return history({ limit: o.limit as number | undefined }, ctx);
      }),
    );

  withGlobals(release.command('list'))
    .description('releases on disk: current, last good, rollback target, bad')
    .action(action(async (_o, _a, ctx) => (await import('./commands/list.js')).list({}, ctx)));

  withGlobals(release.command('status'))
    .description('current and last good release, last deploy, degraded state, unit drift, lock holder')
    .action(action(async (_o, _a, ctx) => (await import('./commands/status.js')).status({}, ctx)));

  withWait(withGlobals(release.command('prune')))
    .description('remove old releases beyond --keep (never current, last good or rollback target)')
    .option('--keep <n>', 'releases to keep', positiveInt('--keep', 1, 100))
    .option('--dry-run', 'print what would be removed, change nothing')
    .action(
      action(async (o, _a, ctx) => {
        const { prune } = await import('./commands/prune.js');
        return prune({ keep: o.keep as number | undefined, dryRun: Boolean(o.dryRun), waitSeconds: waitSeconds(o.wait) }, ctx);
      }),
    );

  withWait(withGlobals(release.command('recover')))
    .description('finish or undo an interrupted deploy (runs at boot and before every mutating command)')
    .option('--boot', 'running from the boot-time unit: repair, but do not restart units')
    .action(
      action(async (o, _a, ctx) => {
        const { recover } = await import('./commands/recover.js');
        return recover({ boot: Boolean(o.boot), waitSeconds: waitSeconds(o.wait) }, ctx);
      }),
    );

  withGlobals(release.command('verify [version]'))
    .description('re-hash installed releases against their recorded file list and signed manifest (exit 4 on any difference)')
    .option('--all', 'every complete release on disk (default: the current one)')
    .action(action(async (o, [version], ctx) => (await import('./commands/verify.js')).verify({ version, all: Boolean(o.all) }, ctx)));

  withGlobals(release.command('keygen'))
    .description('make an ed25519 release signing key pair: smolotchi-<keyid>.key (0600) and .pub')
    .requiredOption('--out <dir>', 'folder for the two key files')
    .action(action(async (o, _a, ctx) => (await import('./commands/keygen.js')).keygen({ out: o.out as string }, ctx)));

  withGlobals(release.command('pack'))
    .description('build smolotchi-X.Y.Z.tar.gz from a tag, with its .sha256, signed manifest and signature')
    .requiredOption('--repo <path|url>', 'git repository holding the tag v<ver> or <ver>')
    .requiredOption('--version <x.y.z>', 'the version to pack')
    .requiredOption('--key <file>', 'ed25519 private key from `keygen` (mode 0600)')
    .option('--out <dir>', 'where to write the four release files (default: .)')
    .option('--wheels <dir>', 'wheels to ship in wheels/ for offline venv builds')
    .action(
      action(async (o, _a, ctx) => {
        const { pack } = await import('./commands/pack.js');
        const opts = { repo: o.repo as string, version: o.version as string, key: o.key as string, out: o.out as string | undefined };
        return pack({ ...opts, wheels: o.wheels as string | undefined }, ctx);
      }),
    );
  return program;
}

/** One line on stderr (plus a hint); with --json also a JSON error object on stdout for scripts. */
function reportError(err: unknown, flags: { verbose: boolean; json: boolean }): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
    return ExitCode.usage; // commander already printed its one-line message
  }
  const known = err instanceof ReleaseError;
  const message = known ? err.message : `unexpected error: ${(err as Error)?.message ?? String(err)}`;
  const exitCode = known ? err.exitCode : ExitCode.failed;
  const hint = known ? err.hint : undefined;
  process.stderr.write(`smolotchi: ${message}\n`);
  if (hint) process.stderr.write(`hint: ${hint}\n`);
  if (flags.verbose && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  if (flags.json) process.stdout.write(JSON.stringify({ schemaVersion: 1, error: { message, exitCode, hint: hint ?? null } }, null, 2) + '\n');
  return exitCode;
}

async function main(argv: string[]): Promise<void> {
  const flags = { verbose: argv.includes('--verbose') || argv.includes('-v'), json: argv.includes('--json') };
  try {
    if (argv.length <= 2) throw new UsageError('no command given; try `smolotchi release --help`');
    await buildProgram().parseAsync(argv);
    await pending;
  } catch (err) {
    process.exitCode = reportError(err, flags);
  }
}

await main(process.argv);
