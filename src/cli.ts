#!/usr/bin/env node
/**
 * Entry point: argv to one command, its result rendered, every failure as `smolotchi:` lines.
 * The only module that exits or sets the exit code; it decides nothing about releases itself.
 */

import { ExitCode } from './core/exit-codes.js';
import { UsageError } from './core/errors.js';
import type { Context } from './core/context.js';
import type { CommandResult } from './render/render.js';
import { commandNamed, type CommandSpec } from './cli/commands.js';
import type { CliOptions } from './cli/flags.js';
import { parseCommandLine } from './cli/parse.js';
import { makeInterruption, type StopSignal } from './core/state/interrupt.js';
import { renderErrorJson, renderErrorText, type ErrorReport } from './render/error.js';
import { stepLabel } from './render/step-labels.js';
import { appInvocation, type AppInvocation } from './core/app/app-argv.js';
import { constants } from 'node:os';
import { lazy } from './cli/lazy.js';

/** What the error and signal paths need to know about the run, filled in as it goes. */
const state = { command: null as string | null, pending: Promise.resolve(), ctx: null as Context | null, json: false, failedAt: null as string | null };

const SIGNAL_EXIT: Record<StopSignal, number> = { SIGINT: 130, SIGTERM: 143 };

function interruptedReport(signal: StopSignal, at: string | null): ErrorReport {
  const where = at ? ` at ${stepLabel(at) ?? at}; the next command (or boot) finishes or undoes it` : '';
  return { command: state.command, message: `interrupted${where}`, exitCode: SIGNAL_EXIT[signal], hint: null };
}

/** Called at a safe point (or at once, outside a mutation) after Ctrl-C/SIGTERM; the lock is already released. */
function stopNow(signal: StopSignal, at: string | null): void {
  const report = interruptedReport(signal, at);
  state.ctx?.progress.close();
  process.stderr.write(renderErrorText(report) + '\n');
  if (state.json) process.stdout.write(renderErrorJson(report) + '\n');
  try {
    state.ctx?.close();
  } finally {
    process.exit(report.exitCode);
  }
}

const interruption = makeInterruption(stopNow);

/** Build the context, run one command, print its result; only this file decides the exit code. */
function runCommand(spec: CommandSpec, run: (ctx: Context) => Promise<CommandResult>, o: CliOptions): void {
  state.command = spec.name;
  state.pending = (async () => {
    const { executeCommand } = await lazy(import.meta.url, './cli/execute.js', () => import('./cli/execute.js'));
    const executed = await executeCommand(spec, run, o, {
      interrupt: interruption,
      color: 'auto',
      onContext: (ctx) => void (state.ctx = ctx),
      onFailure: (step) => void (state.failedAt = step),
    });
    process.stdout.write(executed.output);
    process.exitCode = executed.exitCode;
  })();
}

/** One line on stderr (plus hints); with --json also the JSON error object on stdout for scripts. */
async function reportError(err: unknown, argv: string[]): Promise<number> {
  const { toErrorReport } = await lazy(import.meta.url, './render/error.js', () => import('./render/error.js'));
  // A Ctrl-C also reaches pip and systemctl: their failure is the interruption, said as such.
  const signal = interruption.signal;
  const report = signal ? interruptedReport(signal, state.failedAt) : toErrorReport(err, state.command);
  process.stderr.write(renderErrorText(report) + '\n');
  if ((argv.includes('--verbose') || argv.includes('-v')) && !(err instanceof UsageError) && err instanceof Error && err.stack) {
    process.stderr.write(err.stack + '\n');
  }
  if (argv.includes('--json')) process.stdout.write(renderErrorJson(report) + '\n');
  return report.exitCode;
}

/** `smolotchi <app command>`: the app's own CLI; we end as it ended (its code, or its signal). */
async function passToApp(app: AppInvocation): Promise<void> {
  const { passThrough } = await lazy(import.meta.url, './commands/app.js', () => import('./commands/app.js'));
  const end = await passThrough(app);
  if (end.signal) {
    process.exitCode = 128 + (constants.signals[end.signal] ?? 0);
    process.kill(process.pid, end.signal); // dies the same way, unless Node itself keeps that signal (SIGUSR1)
    return;
  }
  process.exitCode = end.exitCode ?? ExitCode.failed;
}

/** Runs one command; false when it handed over to the app's own CLI. */
async function main(argv: string[]): Promise<boolean> {
  try {
    state.json = argv.includes('--json');
    if (argv.length <= 2) throw new UsageError('no command given', '`smolotchi release --help` lists the commands');
    const app = appInvocation(argv.slice(2));
    if (app) {
      await passToApp(app);
      return false;
    }
    // Our own commands only: the app decides for itself what a Ctrl-C means.
    process.on('SIGINT', () => interruption.request('SIGINT'));
    process.on('SIGTERM', () => interruption.request('SIGTERM'));
    // Errors found before a parser picks the command (argv checks) still name it when argv does.
    state.command = commandNamed(argv);
    // Named for the error path as soon as a parser picks it (before commander parses its flags).
    const picked = await parseCommandLine(argv, (name) => void (state.command = name));
    if (picked) runCommand(picked.spec, picked.run, picked.o);
    await state.pending;
  } catch (err) {
    process.exitCode = await reportError(err, argv);
  }
  return true;
}

/**
 * Our command is over (its lock released, the history closed) and all it printed is written: exit
 * now. Left to itself Node would first free its heap and join its threads, ~30 ms on every command.
 */
async function exitWhenWritten(): Promise<void> {
  // A write's callback runs once the writes before it are done (or the reader is gone: EPIPE).
  await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write('', () => resolve()))));
  process.exit();
}

// A reader that goes away (`| head`) is not a failure of ours: a mutating command still finishes its
// work (stopping mid-deploy would be the worse outcome); what it would have printed is dropped.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

// The app's own CLI (and a signal it ended by) ends as Node ends: its exit is not ours to hurry.
if (await main(process.argv)) await exitWhenWritten();
