/**
 * One release command from parsed options to its rendered output: the context built, the command
 * run, the progress closed, the result rendered. Shared by the CLI and the tests that run a command
 * in-process, so both build and render exactly alike; writing the output and exiting stay the caller's.
 */

import type { Context } from '../core/context.js';
import { ExitCode } from '../core/exit-codes.js';
import type { Interruption } from '../core/state/interrupt.js';
import type { CommandResult } from '../render/render.js';
import type { CommandSpec } from './commands.js';
import { settingsOverrides, type CliOptions } from './flags.js';
import { lazy } from './lazy.js';

export interface ExecuteOptions {
  interrupt?: Interruption;
  /** The environment the context reads (settings, colors); the process's by default. */
  env?: NodeJS.ProcessEnv;
  /** Colors in human output: decided from stdout and the environment, or never. */
  color: 'auto' | false;
  /** Told the context as soon as it exists: the CLI's signal path closes it. */
  onContext?: (ctx: Context) => void;
  /** Told the step a failing command was on, before the error goes on up. */
  onFailure?: (step: string | null) => void;
}

export interface Executed {
  /** What stdout gets: the rendered result, newline-terminated. */
  output: string;
  exitCode: number;
}

/** Build the context, run the command, render its result; a failure is thrown once the context is closed. */
export async function executeCommand(
  spec: CommandSpec,
  run: (ctx: Context) => Promise<CommandResult>,
  o: CliOptions,
  opts: ExecuteOptions,
): Promise<Executed> {
  // Loaded here, not at start-up: `--help` and usage errors never build a context.
  const { createContext } = await lazy(import.meta.url, '../create-context.js', () => import('../create-context.js'));
  // Only `recover` (at boot, or by hand after a malformed-database error) reads every page of the history.
  const fullHistoryCheck = spec.name === 'recover';
  const flags = { root: o.root, systemctl: o.systemctl, quiet: o.quiet, verbose: o.verbose, color: o.color, interrupt: opts.interrupt, fullHistoryCheck };
  const env = opts.env ?? process.env;
  const ctx = createContext(flags, settingsOverrides(o), env);
  opts.onContext?.(ctx);
  try {
    const result = await run(ctx);
    ctx.progress.done();
    const { renderJson, renderText } = await lazy(import.meta.url, '../render/render.js', () => import('../render/render.js'));
    const { colorWanted } = await lazy(import.meta.url, '../render/color.js', () => import('../render/color.js'));
    const { escapeStrings } = await lazy(import.meta.url, '../render/escape.js', () => import('../render/escape.js'));
    const color = opts.color === 'auto' && colorWanted(process.stdout, env, o.color);
    // Human output never carries a release's or the history's control characters raw.
    const output = (o.json ? renderJson(result) : renderText(escapeStrings(result), { color })) + '\n';
    return { output, exitCode: (result as { exitCode?: number }).exitCode ?? ExitCode.ok };
  } catch (err) {
    opts.onFailure?.(ctx.progress.current);
    ctx.progress.fail();
    throw err;
  } finally {
    ctx.close();
  }
}
