/**
 * Every failure in one shape: `smolotchi: <message>` plus `hint:` lines, or the JSON error object.
 * Never shows a raw control character from a release or the history, and never exits.
 */

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

export function toErrorReport(err: unknown, command: string | null): ErrorReport {
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
