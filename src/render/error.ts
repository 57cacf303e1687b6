/**
 * Every failure in one shape: `smolotchi: <message>` plus `hint:` lines, or the JSON error object.
 * Never shows a raw control character from a release or the history, and never exits.
 */

import { CommanderError } from '../cli/commander.js';
import { ReleaseError } from '../core/errors.js';
import { ExitCode } from '../core/exit-codes.js';
import { escapeControl } from './escape.js';
import { SCHEMA_VERSION } from './render.js';

/** Every failure in one shape: `smolotchi: <message>` plus `hint:` lines, or the JSON error object. */
export interface ErrorReport {
  command: string | null;
  message: string;
  exitCode: number;
  hint: string | null;
}

const HELP_OK = new Set(['commander.helpDisplayed', 'commander.version']);

/** True for commander's "help or version was printed" exits, which are successes. */
export function isHelpExit(err: unknown): boolean {
  // `help()` on request exits 0 with code commander.help; a group run without a command exits 1 with it.
  return err instanceof CommanderError && (HELP_OK.has(err.code) || (err.code === 'commander.help' && err.exitCode === 0));
}

/** Commander's own text without its `error: ` prefix; its "(Did you mean x?)" becomes the hint. */
function fromCommander(err: CommanderError, command: string | null): ErrorReport {
  const helpOf = command ? `smolotchi release ${command} --help` : 'smolotchi release --help';
  if (err.code === 'commander.help') {
    // A command group run with no subcommand (`smolotchi release`): commander shows help on stderr.
    return { command, message: 'no command given', exitCode: ExitCode.usage, hint: '`smolotchi release --help` lists the commands' };
  }
  const lines = err.message.replace(/^error: /, '').split('\n');
  // "option '--limit <n>' argument '0' is invalid. --limit must be ..." -> our own sentence, and the value.
  const invalid = /^option '[^']*' argument '(.*)' is invalid\. (.+)$/.exec(lines[0]!);
  if (invalid) lines[0] = `${invalid[2]} (got '${invalid[1]}')`;
  const suggestion = lines.map((l) => /^\(Did you mean (.+)\?\)$/.exec(l.trim())).find(Boolean);
  const hint = suggestion ? `did you mean ${suggestion[1]}? (\`${helpOf}\`)` : `see \`${helpOf}\``;
  return { command, message: lines[0]!, exitCode: ExitCode.usage, hint };
}

export function toErrorReport(err: unknown, command: string | null): ErrorReport {
  if (err instanceof CommanderError) return fromCommander(err, command);
  if (err instanceof ReleaseError) return { command, message: err.message, exitCode: err.exitCode, hint: err.hint ?? null };
  return { command, message: `unexpected error: ${(err as Error)?.message ?? String(err)}`, exitCode: ExitCode.failed, hint: null };
}

export function renderErrorText(r: ErrorReport): string {
  // A message may quote a release's output or history text: never a raw control character.
  return [`smolotchi: ${escapeControl(r.message)}`, ...(r.hint ? r.hint.split('\n').map((h) => `hint: ${escapeControl(h)}`) : [])].join('\n');
}

export function renderErrorJson(r: ErrorReport): string {
  return JSON.stringify({ schemaVersion: SCHEMA_VERSION, command: r.command, error: { message: r.message, exitCode: r.exitCode, hint: r.hint } }, null, 2);
}
