/**
 * Runs the app's own CLI in the foreground, after this process became the service user for good.
 * Never starts the app while any root privilege is left (groups, gid and uid are dropped first).
 */

import { spawn } from 'node:child_process';
import { ReleaseError } from '../core/errors.js';

export interface Identity {
  uid: number;
  gid: number;
  /** Supplementary groups (gpio, i2c on a Pi); the primary group is added here. */
  groups: number[];
}

/** How the app ended: its exit code, or the signal that killed it. */
export interface AppExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Become the service user for good (groups, then gid, then uid: each needs the privilege the next
 * one drops). Done in this process before the app starts, so the app never runs with a root
 * parent it could signal or a root-owned file it could create.
 */
export function becomeUser(id: Identity): void {
  process.setgroups!([id.gid, ...id.groups.filter((g) => g !== id.gid)]);
  process.setgid!(id.gid);
  process.setuid!(id.uid);
  if (process.getuid!() !== id.uid || process.geteuid!() !== id.uid || process.getegid!() !== id.gid) {
    throw new ReleaseError(`could not drop to uid ${id.uid}: refusing to run the app with privileges`);
  }
}

/**
 * Run the app in the foreground with our stdin, stdout and stderr, forwarding SIGINT, SIGTERM and
 * SIGHUP. A Ctrl-C typed at a terminal already reaches the app (same process group): then SIGINT
 * is not sent a second time.
 */
export function runForeground(file: string, args: string[], env: Record<string, string>, cwd: string): Promise<AppExit> {
  const child = spawn(file, args, { stdio: 'inherit', env, cwd });
  const handlers = FORWARDED.map((sig) => {
    const handler = () => {
      if (sig === 'SIGINT' && process.stdin.isTTY) return;
      child.kill(sig);
    };
    process.on(sig, handler);
    return [sig, handler] as const;
  });
  const cleanup = () => handlers.forEach(([sig, handler]) => process.off(sig, handler));
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      cleanup();
      reject(new ReleaseError(`cannot start ${file}: ${err.message}`));
    });
    child.once('exit', (exitCode, signal) => {
      cleanup();
      resolve({ exitCode, signal });
    });
  });
}
