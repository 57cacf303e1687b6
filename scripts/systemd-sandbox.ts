import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { packageRoot } from '../src/core/package-root.js';

/**
 * A real systemd as PID 1 in private namespaces (scripts/systemd-sandbox.sh), for the e2e suite,
 * the demo and the bench: the built CLI runs inside with its production paths and a real systemctl.
 */

export const REPO_ROOT = packageRoot();
const SCRIPT = path.join(REPO_ROOT, 'scripts', 'systemd-sandbox.sh');
const SYSTEMD = process.env.SYSTEMD_BIN ?? '/lib/systemd/systemd';
/** Paths the script bind-mounts privately; their host side is DIR/fs/<path>. */
const PRIVATE = ['/opt/smolotchi', '/var/lib/smolotchi', '/var/cache/smolotchi', '/etc/smolotchi', '/etc/systemd/system', '/etc/tmpfiles.d'];

export type SandboxCheck = { ok: true } | { ok: false; reason: string };

export interface ExecOptions {
  /** Working directory inside the sandbox (default `/`). */
  cwd?: string;
  /** Added to a clean root-shell environment (PATH, HOME=/root, LANG). */
  env?: Record<string, string>;
  timeoutMs?: number;
  input?: string;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface Sandbox {
  /** Host folder holding the sandbox's state; visible at the same path inside. */
  dir: string;
  /** A scratch folder for fixtures (repos, tarballs), visible at the same path inside. */
  workDir: string;
  /** Host PID of the sandbox's systemd. */
  pid: number;
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** The host-side path of a path inside the sandbox (to read or write its files directly). */
  fsPath(devicePath: string): string;
  stop(): Promise<void>;
}

/**
 * A cached machine check for a root-only suite: its answer (with the reason, for a skip message),
 * or, under SMOLOTCHI_E2E=require (CI), an error instead of a skip.
 */
export function requirableCheck(what: string, probe: () => SandboxCheck): () => SandboxCheck {
  let check: SandboxCheck | undefined;
  return () => {
    check ??= probe();
    if (!check.ok && process.env.SMOLOTCHI_E2E === 'require') {
      throw new Error(`SMOLOTCHI_E2E=require but ${what} cannot run: ${check.reason}`);
    }
    return check;
  };
}

/** Whether this machine can boot the sandbox, and if not, why (for a skip message). Cached. */
export const canRunSandbox = requirableCheck('the systemd sandbox', probe);

function probe(): SandboxCheck {
  if (process.env.SMOLOTCHI_E2E === 'skip') return { ok: false, reason: 'SMOLOTCHI_E2E=skip' };
  if (process.platform !== 'linux') return { ok: false, reason: `needs Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (it boots systemd as PID 1 in private namespaces)' };
  for (const tool of ['unshare', 'nsenter', 'setsid', 'pgrep', 'bash']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return { ok: false, reason: `needs ${tool} on PATH` };
  }
  if (!existsSync(SYSTEMD)) return { ok: false, reason: `no systemd at ${SYSTEMD}` };
  // A quick boot proves the kernel allows the namespaces (containers often do not).
  const dir = mkdtempSync(path.join(baseDir(), 'smolotchi-e2e-probe-'));
  try {
    const r = spawnSync('bash', [SCRIPT, 'start', dir], { encoding: 'utf8', timeout: 600_000, env: sandboxScriptEnv() });
    if (r.status !== 0) {
      const log = existsSync(path.join(dir, 'boot.log')) ? readFileSync(path.join(dir, 'boot.log'), 'utf8') : '';
      return { ok: false, reason: `a test boot failed: ${lastLines(`${r.stderr}\n${log}`, 6)}` };
    }
    return { ok: true };
  } finally {
    spawnSync('bash', [SCRIPT, 'stop', dir], { timeout: 30_000 });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Where sandboxes (and fleets) make their folders: SMOLOTCHI_E2E_TMPDIR or the temp dir. */
export function baseDir(): string {
  return process.env.SMOLOTCHI_E2E_TMPDIR ?? os.tmpdir();
}

/** Environment for the scripts that boot sandboxes (and fleets of them). */
export function sandboxScriptEnv(): NodeJS.ProcessEnv {
  // The checkout and node stay visible inside even when they live under /tmp (private there).
  const keep = new Set<string>();
  for (const p of [REPO_ROOT, path.dirname(process.execPath)]) {
    keep.add(p);
    keep.add(realpathSync(p));
  }
  return { ...process.env, SANDBOX_KEEP: [...keep].join(':') };
}

function lastLines(text: string, n: number): string {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).slice(-n).join(' | ');
}

const running = new Set<string>();
process.once('exit', () => {
  // A crashed test run must not leave a systemd behind.
  for (const dir of running) spawnSync('bash', [SCRIPT, 'stop', dir], { timeout: 10_000 });
});

/** Boot a fresh sandbox (about a quarter of a second). */
export async function startSandbox(): Promise<Sandbox> {
  const dir = await fs.mkdtemp(path.join(baseDir(), 'smolotchi-e2e-'));
  const started = await execa('bash', [SCRIPT, 'start', dir], { env: sandboxScriptEnv(), reject: false, timeout: 600_000 });
  if (started.exitCode !== 0) {
    const log = await fs.readFile(path.join(dir, 'boot.log'), 'utf8').catch(() => '');
    throw new Error(`systemd sandbox did not boot: ${started.stderr}\n${lastLines(log, 20)}`);
  }
  running.add(dir);
  const pid = Number(String(started.stdout).trim().split('\n').pop());
  const workDir = path.join(dir, 'work');
  await fs.mkdir(workDir, { recursive: true });
  return sandboxAt(dir, pid, workDir, true);
}

/**
 * A sandbox someone else booted (a fleet-sandbox device): its PID is read from DIR/pid now, so
 * attach again after a reboot. `stop()` stops it but leaves DIR to its owner.
 */
export async function attachSandbox(dir: string): Promise<Sandbox> {
  const pid = Number((await fs.readFile(path.join(dir, 'pid'), 'utf8')).trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`${dir}/pid holds no PID`);
  return sandboxAt(dir, pid, path.join(dir, 'work'), false);
}

function sandboxAt(dir: string, pid: number, workDir: string, owned: boolean): Sandbox {
  const hostPath = path.dirname(process.execPath);
  return {
    dir,
    workDir,
    pid,
    async exec(argv, opts = {}) {
      const env = {
        PATH: `${hostPath}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
        HOME: '/root',
        LANG: 'C.UTF-8',
        ...opts.env,
      };
      const nsenter = ['-t', String(pid), '-p', '-m', '-n', '-u', '-i', `--wd=${opts.cwd ?? '/'}`, '--', ...argv];
      const r = await execa('nsenter', nsenter, {
        env,
        extendEnv: false,
        reject: false,
        timeout: opts.timeoutMs ?? 600_000, // a hang guard only: a loaded CI is slow, not wrong
        input: opts.input,
        stdin: opts.input === undefined ? 'ignore' : 'pipe',
      });
      const how = r.timedOut ? `\n[timed out: ${argv.join(' ')}]` : '';
      return { exitCode: r.exitCode ?? 128, stdout: String(r.stdout), stderr: String(r.stderr) + how };
    },
    fsPath(devicePath) {
      const p = path.posix.normalize(devicePath);
      if (PRIVATE.some((root) => p === root || p.startsWith(`${root}/`))) return path.join(dir, 'fs', p);
      return `/proc/${pid}/root${p}`;
    },
    async stop() {
      await execa('bash', [SCRIPT, 'stop', dir], { reject: false, timeout: 30_000 });
      if (!owned) return;
      running.delete(dir);
      if (process.env.SMOLOTCHI_E2E_KEEP !== '1') await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
