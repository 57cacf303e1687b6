import { execa } from 'execa';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The BUILT CLI (npm test runs tsc first): tests drive the tool exactly as a user does. */
export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'src', 'cli.js');

/**
 * Safety net for a child process that never ends: generous enough that a heavily loaded CI never
 * meets it (tests wait for events, not the clock); only a real hang does.
 */
export const HANG_GUARD_MS = 10 * 60_000;

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  json<T = Record<string, unknown>>(): T;
}

export async function runCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliRun> {
  const r = await execa(process.execPath, [CLI, ...args], {
    reject: false,
    env: { NO_COLOR: '1', ...opts.env },
    timeout: opts.timeoutMs ?? HANG_GUARD_MS,
    stdin: 'ignore',
  });
  if (r.timedOut) throw new Error(`hang guard: \`${args.join(' ')}\` still running after ${(opts.timeoutMs ?? HANG_GUARD_MS) / 1000} s`);
  return {
    exitCode: r.exitCode ?? -1,
    stdout: r.stdout,
    stderr: r.stderr,
    json: <T>() => JSON.parse(r.stdout) as T,
  };
}

/** Write /etc/smolotchi/env under a sandbox root. */
export function writeEnvFile(root: string, lines: Record<string, string | number>): void {
  const file = path.join(root, 'etc', 'smolotchi', 'env');
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, Object.entries(lines).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
}
