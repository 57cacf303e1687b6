import type { Options } from 'execa';
import { ReleaseError } from '../core/errors.js';

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Replace the environment instead of extending process.env. */
  extendEnv?: boolean;
  timeoutMs?: number;
  input?: string;
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

export async function runAllowingFailure(
  file: string,
  args: string[],
  options: RunOptions = {},
): Promise<RunResult & { signal?: string }> {
  const execaOptions: Options = {
    cwd: options.cwd,
    env: options.env,
    extendEnv: options.extendEnv ?? true,
    timeout: options.timeoutMs,
    input: options.input,
    reject: false,
    stdin: options.input === undefined ? 'ignore' : 'pipe',
    encoding: 'utf8',
    stripFinalNewline: true,
  };
  // Loaded on first use: execa costs ~50 ms to import, and read-only commands never spawn.
  const { execa } = await import('execa');
  const child = execa(file, args, execaOptions);
  if (options.onOutput) {
    forwardLines(child.stdout, options.onOutput);
    forwardLines(child.stderr, options.onOutput);
  }
  const r = await child;
  if (r.failed && r.exitCode === undefined && !r.signal) {
    const cause = r.cause instanceof Error ? r.cause.message : String(r.shortMessage);
    throw new ProcessError([file, ...args], undefined, undefined, cause);
  }
  return {
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    exitCode: r.exitCode ?? (r.signal ? 128 : 1),
    signal: r.signal ?? undefined,
  };
}
