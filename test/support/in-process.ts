import { executeCommand } from '../../src/cli/execute.js';
import { parseCommandLine, type ParsedCommand } from '../../src/cli/parse.js';
import { KILL_ENV, KILL_GROUP_AT_STEP_ENV, PAUSE_ENV, TRACE_ENV } from '../../src/core/killpoint.js';
import { renderErrorText, toErrorReport } from '../../src/render/error.js';

/**
 * One `release` command run inside the test process, the way src/cli.ts runs it (the same
 * parsing, the same src/cli/execute.ts, the same error reports), without a node start-up and
 * module loading (~0.2-0.4 CPU-s a command). For the checks after a crash, where the point is
 * "the next command succeeds and leaves the invariants"; the interrupted run itself, and one
 * check per suite, stay real processes (test/support/crash-fixture.ts `cli`). Runs one at a time:
 * stderr is captured by replacing process.stderr.write while the command runs.
 */

export interface InProcessRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The test-only variables that make a process kill or pause itself: never in the test process. */
const CRASH_ENV = [KILL_ENV, PAUSE_ENV, TRACE_ENV, KILL_GROUP_AT_STEP_ENV];

export async function runInProcess(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<InProcessRun> {
  const set = CRASH_ENV.filter((name) => process.env[name] !== undefined || env[name] !== undefined);
  if (set.length) throw new Error(`in-process command with ${set.join(', ')} set: it would kill or pause the test process`);
  let picked: ParsedCommand | null = null;
  let named: string | null = null;
  const stderr: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  }) as typeof process.stderr.write;
  let stdout = '';
  let exitCode: number;
  try {
    picked = await parseCommandLine([process.execPath, 'cli.js', ...args], (name) => void (named = name));
    if (!picked) throw new Error(`\`${args.join(' ')}\` names no release command`);
    const executed = await executeCommand(picked.spec, picked.run, picked.o, { env, color: false });
    stdout = executed.output;
    exitCode = executed.exitCode;
  } catch (err) {
    const report = toErrorReport(err, named);
    stderr.push(renderErrorText(report) + '\n');
    exitCode = report.exitCode;
  } finally {
    process.stderr.write = write;
  }
  return { exitCode, stdout, stderr: stderr.join('') };
}
