/**
 * Builds the commander program from the command registry: help groups, exit-code footers.
 * Never prints or exits itself: every error, commander's included, goes to the CLI's error path.
 */

import { Command } from './commander.js';
import type { Context } from '../core/context.js';
import { ExitCode, type ExitCodeValue } from '../core/exit-codes.js';
import { TOOL_VERSION } from '../core/package-root.js';
import type { CommandResult } from '../render/render.js';
import { RELEASE_COMMANDS, type CommandSpec } from './commands.js';
import { addGateFlags, addGlobalFlags, addSystemctlFlag, addWaitFlags, type CliOptions } from './flags.js';

/** What the program does when a command's action fires: the CLI builds the context and prints. */
export type RunCommand = (spec: CommandSpec, run: (ctx: Context) => Promise<CommandResult>, o: CliOptions) => void;

const EXIT_MEANING: Record<ExitCodeValue, string> = {
  [ExitCode.ok]: 'success (also: nothing to do)',
  [ExitCode.failed]: 'failed; nothing was switched',
  [ExitCode.usage]: 'usage: bad command line, version or setting; nothing touched',
  [ExitCode.notFound]: 'not found: unknown version, release not on this device',
  [ExitCode.integrity]: 'integrity: checksum, signature, archive or tree check failed',
  [ExitCode.rolledBack]: 'health gate failed; the previous release was restored',
  [ExitCode.degraded]: 'degraded: the way back failed too; a human is needed',
  [ExitCode.locked]: 'another live process holds the release lock (see --wait)',
};
const SIGNAL_EXITS = '130  interrupted by Ctrl-C (143: SIGTERM) at a safe point; the next command finishes or undoes it';

const APP_HELP = `
Commands of the app:
  Every other command (status, prune, health, db migrate, ai, ...) belongs to the
  smolotchi app: it runs in the current release, as the smolotchi user, with
  /etc/smolotchi/env loaded (e.g. \`smolotchi status\`, \`smolotchi db migrate\`).
  Only --root DIR may come before it; everything after it is the app's.`;

function exitCodeLines(codes: ExitCodeValue[]): string[] {
  return codes.map((c) => `  ${String(c).padStart(2)}  ${EXIT_MEANING[c]}`);
}

function helpFooter(spec: CommandSpec): string {
  const mutating = spec.uses.wait ? [`  ${SIGNAL_EXITS}`] : [];
  return ['', 'Exit codes:', ...exitCodeLines(spec.exitCodes), ...mutating, '', 'Examples:', ...spec.examples.map((e) => `  ${e}`)].join('\n');
}

function register(parent: Command, spec: CommandSpec, runCommand: RunCommand): Command {
  const cmd = parent.command(spec.args ? `${spec.name} ${spec.args}` : spec.name).description(spec.summary).exitOverride();
  cmd.configureHelp({ showGlobalOptions: false });
  // Its own flags first, then the shared ones, then the global ones (each a help group).
  spec.options?.(cmd);
  addSystemctlFlag(cmd, Boolean(spec.uses.systemctl));
  if (spec.uses.wait) addWaitFlags(cmd);
  if (spec.uses.gate) addGateFlags(cmd);
  addGlobalFlags(cmd, { root: spec.uses.root !== false });
  cmd.addHelpText('after', helpFooter(spec));
  cmd.action((...argv: unknown[]) => {
    const self = argv[argv.length - 1] as Command;
    const args = argv.slice(0, -2).filter((a): a is string => typeof a === 'string');
    const o = self.optsWithGlobals() as CliOptions;
    // A negated flag has a default at every level, and the outer level's would win the merge.
    const levels: Command[] = [];
    for (let c: Command | null = self; c; c = c.parent) levels.push(c);
    o.color = levels.every((c) => c.opts().color !== false);
    runCommand(spec, (ctx) => spec.run(o, args, ctx), o);
  });
  return cmd;
}

/**
 * `smolotchi [globals] release <command> ...`. Commander prints nothing itself: every error,
 * its own included, goes through the CLI's one error path (text or JSON).
 */
export function buildProgram(runCommand: RunCommand, commands: CommandSpec[] = RELEASE_COMMANDS): Command {
  const silent = { writeErr: () => {}, outputError: () => {} };
  const program = addGlobalFlags(new Command('smolotchi'), { root: true })
    .description('Atomic, health-gated releases of the smolotchi app')
    .addHelpText('after', APP_HELP)
    .version(TOOL_VERSION)
    .exitOverride()
    .configureOutput(silent)
    // Program options only before `release`: `pack --version X.Y.Z` is pack's, not the tool's -V.
    .enablePositionalOptions()
    .showSuggestionAfterError()
    .helpCommand(false);
  const release = addGlobalFlags(program.command('release'), { root: true })
    .description('install, switch, roll back and inspect releases')
    .exitOverride()
    .configureOutput(silent)
    .addHelpText('after', ['', 'Exit codes (each command lists its own):', ...exitCodeLines(Object.values(ExitCode)), `  ${SIGNAL_EXITS}`].join('\n'));
  for (const spec of commands) register(release, spec, runCommand).configureOutput(silent);
  // `smolotchi help release install` shows install's help (commander's own stops at `release`).
  program
    .command('help [command...]')
    .description('show the help of a command, e.g. `smolotchi help release install`')
    .action((words: string[]) => {
      let target: Command = program;
      for (const w of words) {
        const next = target.commands.find((c) => c.name() === w || c.aliases().includes(w));
        if (!next) return target.error(`unknown command '${words.join(' ')}'`, { code: 'commander.unknownCommand', exitCode: ExitCode.usage });
        target = next;
      }
      target.help();
    });
  return program;
}
