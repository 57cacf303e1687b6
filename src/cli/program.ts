/**
 * Builds the commander program from the command registry: help groups, exit-code footers.
 * Never prints or exits itself: every error, commander's included, goes to the CLI's error path.
 * Loaded only for what the quick parser leaves to it: help, versions, mistakes, unusual forms.
 */

import { Command, CommanderError, InvalidArgumentError, Option } from './commander.js';
import type { Context } from '../core/context.js';
import { UsageError } from '../core/errors.js';
import { ExitCode, type ExitCodeValue } from '../core/exit-codes.js';
import { TOOL_VERSION } from '../core/package-root.js';
import type { CommandResult } from '../render/render.js';
import { commandNamed, RELEASE_COMMANDS, type CommandSpec } from './commands.js';
import { commandFlags, globalFlags, HELP_FLAG, InvalidFlagValue, type CliOptions, type FlagSpec } from './flags.js';
import type { ParsedCommand } from './parse.js';

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

function toOption(f: FlagSpec): Option {
  const option = new Option(f.flags, f.description);
  if (f.choices) option.choices(f.choices);
  const parse = f.parse;
  if (parse) {
    option.argParser((value: string) => {
      try {
        return parse(value);
      } catch (err) {
        // commander words its own "argument 'x' is invalid." around what the parser said.
        throw err instanceof InvalidFlagValue ? new InvalidArgumentError(err.message) : err;
      }
    });
  }
  if (f.required) option.makeOptionMandatory();
  if (f.hidden) option.hideHelp();
  if (f.group) option.helpGroup(f.group);
  return option;
}

/** Flags in the order given (each group in help keeps it), then -h/--help. */
function addFlags(cmd: Command, flags: FlagSpec[]): Command {
  for (const f of flags) cmd.addOption(toOption(f));
  return cmd.addHelpOption(toOption(HELP_FLAG));
}

function register(parent: Command, spec: CommandSpec, runCommand: RunCommand): Command {
  const cmd = parent.command(spec.args ? `${spec.name} ${spec.args}` : spec.name).description(spec.summary).exitOverride();
  cmd.configureHelp({ showGlobalOptions: false });
  addFlags(cmd, commandFlags(spec));
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
  const program = addFlags(new Command('smolotchi'), globalFlags({ root: true }))
    .description('Atomic, health-gated releases of the smolotchi app')
    .addHelpText('after', APP_HELP)
    .version(TOOL_VERSION)
    .exitOverride()
    .configureOutput(silent)
    // Program options only before `release`: `pack --version X.Y.Z` is pack's, not the tool's -V.
    .enablePositionalOptions()
    .showSuggestionAfterError()
    .helpCommand(false);
  const release = addFlags(program.command('release'), globalFlags({ root: true }))
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

const HELP_OK = new Set(['commander.helpDisplayed', 'commander.version']);

/** Commander's own text without its `error: ` prefix, as a usage error; its "(Did you mean x?)" becomes the hint. */
function usageFromCommander(err: CommanderError, command: string | null): UsageError {
  const helpOf = command ? `smolotchi release ${command} --help` : 'smolotchi release --help';
  // A command group run with no subcommand (`smolotchi release`): commander shows help on stderr.
  if (err.code === 'commander.help') return new UsageError('no command given', '`smolotchi release --help` lists the commands');
  const lines = err.message.replace(/^error: /, '').split('\n');
  // "option '--limit <n>' argument '0' is invalid. --limit must be ..." -> our own sentence, and the value.
  const invalid = /^option '[^']*' argument '(.*)' is invalid\. (.+)$/.exec(lines[0]!);
  if (invalid) lines[0] = `${invalid[2]} (got '${invalid[1]}')`;
  const suggestion = lines.map((l) => /^\(Did you mean (.+)\?\)$/.exec(l.trim())).find(Boolean);
  return new UsageError(lines[0]!, suggestion ? `did you mean ${suggestion[1]}? (\`${helpOf}\`)` : `see \`${helpOf}\``);
}

/**
 * argv (already normalized) through commander: the command it picked, or null once it printed help
 * or the version. Its mistakes come out as UsageError (exit 2); `onCommand` hears the command's name
 * as soon as commander picks it, before its flags are parsed.
 */
export async function parseWithCommander(argv: string[], onCommand: (name: string) => void = () => {}, commands = RELEASE_COMMANDS): Promise<ParsedCommand | null> {
  let picked: ParsedCommand | null = null;
  let command = commandNamed(argv, commands);
  const program = buildProgram((spec, run, o) => void (picked = { spec, run, o }), commands);
  program.commands.find((c) => c.name() === 'release')?.hook('preSubcommand', (_self, sub) => {
    command = sub.name();
    onCommand(command);
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    // `help()` on request exits 0 with code commander.help; a group run without a command exits 1 with it.
    if (HELP_OK.has(err.code) || (err.code === 'commander.help' && err.exitCode === 0)) return null;
    throw usageFromCommander(err, command);
  }
  return picked;
}
