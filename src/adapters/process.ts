/**
 * Runs a program with an argument array and a timeout; failures carry argv, exit and stderr tail.
 * Never runs a shell string, and never release code (that goes through service-user.ts).
 */

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { ReleaseError } from '../core/errors.js';

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Replace the environment instead of extending process.env. */
  extendEnv?: boolean;
  timeoutMs?: number;
  /** Written to stdin, then closed; a promise writes when it settles (a child told when to go on). */
  input?: string | Promise<string>;
  /** Each line of stdout and stderr as it arrives (the whole output is still returned). */
  onOutput?: (line: string) => void;
}

/** Split a child's stream into lines for a listener; a partial last line waits for its end. */
function forwardLines(stream: NodeJS.ReadableStream | null | undefined, onLine: (line: string) => void): void {
  let rest = '';
  stream?.on('data', (chunk: Buffer | string) => {
    const lines = (rest + chunk.toString()).split(/\r?\n|\r/);
    rest = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) onLine(l);
  });
  stream?.on('end', () => rest.trim() && onLine(rest));
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** A child process that failed: its argv, how it ended, and the stderr lines that matter. */
export class ProcessError extends ReleaseError {
  constructor(
    readonly argv: string[],
    readonly exitCode_: number | undefined,
    readonly signal: string | undefined,
    readonly stderrTail: string,
    what?: string,
  ) {
    const how = signal ? `killed by ${signal}` : exitCode_ === undefined ? 'did not start' : `exit ${exitCode_}`;
    const tail = stderrTail ? `: ${stderrTail.split('\n').slice(-1)[0]}` : '';
    super(`${what ?? argv[0]} failed (${how})${tail}`);
  }
}

/** The last few non-empty lines of a child's output: enough to say why, short enough to read. */
export function tailLines(text: string, count = 8): string {
  return text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.length > 0)
    .slice(-count)
    .join('\n');
}

/** Run a program with an argument array (never a shell string); throws ProcessError on failure. */
export async function run(file: string, args: string[], options: RunOptions = {}, what?: string): Promise<RunResult> {
  const result = await runAllowingFailure(file, args, options);
  if (result.exitCode !== 0) {
    throw new ProcessError([file, ...args], result.exitCode, result.signal, tailLines(result.stderr || result.stdout), what);
  }
  return result;
}

/** Children still running, stopped if this process exits first (as execa's `cleanup` did). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGTERM');
    });
  }
  live.add(child);
  child.once('close', () => live.delete(child));
}

/** A timed-out child gets SIGTERM, then SIGKILL if it is still there 5 s later. */
const FORCE_KILL_AFTER_MS = 5_000;

/**
 * Spawn `file` with an argument array (no shell) and the environment rules of RunOptions; stdin
 * is ignored unless `input` is given. Plain node:child_process: execa cost ~150 ms to import,
 * more than the work of a whole rollback.
 */
export function spawnChild(file: string, args: string[], options: RunOptions & { stdout?: 'pipe' | 'ignore'; stdin?: 'ignore' | 'pipe' }): ChildProcess {
  const env = options.extendEnv === false ? { ...options.env } : { ...process.env, ...options.env };
  // An env value of undefined means "not set" (execa's rule): drop it rather than pass "undefined".
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const spawnOptions: SpawnOptions = {
    cwd: options.cwd,
    env,
    stdio: [options.stdin ?? (options.input === undefined ? 'ignore' : 'pipe'), options.stdout ?? 'pipe', 'pipe'],
  };
  const child = spawn(file, args, spawnOptions);
  track(child);
  return child;
}

/** Stop a child at its deadline: SIGTERM, then SIGKILL if it does not go. */
export function killAfter(child: ChildProcess, timeoutMs: number | undefined): () => void {
  if (!timeoutMs) return () => {};
  let force: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    child.kill('SIGTERM');
    force = setTimeout(() => child.kill('SIGKILL'), FORCE_KILL_AFTER_MS);
    force.unref();
  }, timeoutMs);
  return () => {
    clearTimeout(timer);
    if (force) clearTimeout(force);
  };
}

/** How a child ended: its exit code and signal, or the spawn error (e.g. ENOENT) if it never ran. */
export type ChildEnd = { code: number | null; signal: NodeJS.Signals | null; error?: Error };

/** Settles once the child has exited and its output streams closed; never rejects. */
export function waitForExit(child: ChildProcess): Promise<ChildEnd> {
  return new Promise((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

const stripFinalNewline = (s: string) => (s.endsWith('\r\n') ? s.slice(0, -2) : s.endsWith('\n') ? s.slice(0, -1) : s);

export async function runAllowingFailure(
  file: string,
  args: string[],
  options: RunOptions = {},
): Promise<RunResult & { signal?: string }> {
  const child = spawnChild(file, args, options);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  if (options.onOutput) {
    forwardLines(child.stdout, options.onOutput);
    forwardLines(child.stderr, options.onOutput);
  }
  if (options.input !== undefined && child.stdin) {
    const stdin = child.stdin;
    stdin.on('error', () => {}); // a child that exits without reading its input is judged by its exit
    void Promise.resolve(options.input).then((text) => stdin.end(text), () => stdin.end());
  }
  const stopTimer = killAfter(child, options.timeoutMs);
  const ended = await waitForExit(child);
  stopTimer();
  if (ended.error) throw new ProcessError([file, ...args], undefined, undefined, ended.error.message);
  return {
    stdout: stripFinalNewline(Buffer.concat(out).toString('utf8')),
    stderr: stripFinalNewline(Buffer.concat(err).toString('utf8')),
    exitCode: ended.code ?? (ended.signal ? 128 : 1),
    signal: ended.signal ?? undefined,
  };
}
