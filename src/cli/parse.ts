/**
 * argv to the one release command to run: the quick parser reads the well-formed line, commander
 * (loaded only then) everything else, with its help and its errors. Never runs the command.
 */

import type { Context } from '../core/context.js';
import type { CommandResult } from '../render/render.js';
import { RELEASE_COMMANDS, type CommandSpec } from './commands.js';
import { normalizeArgv, type CliOptions } from './flags.js';
import { quickParse } from './quick-parse.js';
import { lazy } from './lazy.js';

/** The command to run, bound to its arguments; `o` for what the caller sets up around it. */
export interface ParsedCommand {
  spec: CommandSpec;
  run: (ctx: Context) => Promise<CommandResult>;
  o: CliOptions;
}

/**
 * The command argv names, or null when commander printed help or the version instead. A mistake
 * throws a UsageError (exit 2); `onCommand` hears the command's name once a parser picked it.
 */
export async function parseCommandLine(argv: string[], onCommand: (name: string) => void = () => {}): Promise<ParsedCommand | null> {
  const normalized = normalizeArgv(argv);
  const quick = quickParse(normalized, RELEASE_COMMANDS);
  if (quick) {
    onCommand(quick.spec.name);
    return { spec: quick.spec, run: (ctx) => quick.spec.run(quick.o, quick.args, ctx), o: quick.o };
  }
  const { parseWithCommander } = await lazy(import.meta.url, './program.js', () => import('./program.js'));
  return parseWithCommander(normalized, onCommand);
}
