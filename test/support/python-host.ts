/**
 * Whether this host can build the venvs the venv tests need (venv and pip for /usr/bin/python3).
 * Never installs anything: a test file skips with the reason this returns.
 */
import { execa } from 'execa';

/** The product's default interpreter: real venvs, pip never reaching an index (tests ship wheels). */
export const PYTHON = '/usr/bin/python3';

/** Null when `python3 -m venv` and `python3 -m pip` both work; otherwise what is missing. */
export async function pythonHostProblem(): Promise<string | null> {
  for (const args of [['-m', 'venv', '--help'], ['-m', 'pip', '--version']]) {
    const r = await execa(PYTHON, args, { reject: false });
    if (r.exitCode !== 0) return `${PYTHON} ${args.slice(0, 2).join(' ')} is unavailable`;
  }
  return null;
}
