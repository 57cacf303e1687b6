import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { createSampleRepo, type SampleVersion } from '../../scripts/sample-app.js';

/**
 * A real systemd as PID 1 in private namespaces (test/support/systemd-sandbox.sh), for the e2e
 * suite: the built CLI runs inside with its production paths and a real systemctl.
 */

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');
const SCRIPT = path.join(HERE, 'systemd-sandbox.sh');
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

let check: SandboxCheck | undefined;

/** Whether this machine can boot the sandbox, and if not, why (for a skip message). Cached. */
export function canRunSandbox(): SandboxCheck {
  check ??= probe();
  if (!check.ok && process.env.SMOLOTCHI_E2E === 'require') {
    throw new Error(`SMOLOTCHI_E2E=require but the systemd sandbox cannot run: ${check.reason}`);
  }
  return check;
}

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
    const r = spawnSync('bash', [SCRIPT, 'start', dir], { encoding: 'utf8', timeout: 60_000, env: scriptEnv() });
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

function baseDir(): string {
  return process.env.SMOLOTCHI_E2E_TMPDIR ?? os.tmpdir();
}

function scriptEnv(): NodeJS.ProcessEnv {
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
  const started = await execa('bash', [SCRIPT, 'start', dir], { env: scriptEnv(), reject: false, timeout: 60_000 });
  if (started.exitCode !== 0) {
    const log = await fs.readFile(path.join(dir, 'boot.log'), 'utf8').catch(() => '');
    throw new Error(`systemd sandbox did not boot: ${started.stderr}\n${lastLines(log, 20)}`);
  }
  running.add(dir);
  const pid = Number(String(started.stdout).trim().split('\n').pop());
  const workDir = path.join(dir, 'work');
  await fs.mkdir(workDir, { recursive: true });
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
        timeout: opts.timeoutMs ?? 170_000,
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
      running.delete(dir);
      if (process.env.SMOLOTCHI_E2E_KEEP !== '1') await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

// ---- Helpers for the e2e suite: the built CLI, HTTP and systemd as seen from inside. ----

/** The built CLI (`npm test` runs tsc first); the e2e suite never tests sources directly. */
export const CLI = path.join(REPO_ROOT, 'dist', 'src', 'cli.js');

/** `smolotchi <args>` inside the sandbox, as an operator types it: no --root, real systemctl. */
export function smolotchi(sb: Sandbox, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return sb.exec([process.execPath, CLI, ...args], opts);
}

/** Run a CLI command that prints JSON; the failure message carries its output. */
export async function smolotchiJson<T = Record<string, unknown>>(sb: Sandbox, args: string[]): Promise<{ r: ExecResult; json: T }> {
  const r = await smolotchi(sb, [...args, '--json']);
  try {
    return { r, json: JSON.parse(r.stdout) as T };
  } catch {
    throw new Error(`smolotchi ${args.join(' ')} --json: not JSON (exit ${r.exitCode})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

/** Explain a CLI result in an assertion message. */
export function explain(r: ExecResult): string {
  return `exit ${r.exitCode}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** Replace /etc/smolotchi/env (the operator's settings) inside the sandbox. */
export async function writeEnvFile(sb: Sandbox, vars: Record<string, string | number>): Promise<void> {
  const file = sb.fsPath('/etc/smolotchi/env');
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, Object.entries(vars).map(([k, v]) => `${k}=${v}\n`).join(''));
}

export interface UnitInfo {
  ActiveState: string;
  SubState: string;
  LoadState: string;
  Result: string;
  MainPID: number;
  NRestarts: number;
  FragmentPath: string;
}

export async function unitInfo(sb: Sandbox, unit: string): Promise<UnitInfo> {
  const props = ['ActiveState', 'SubState', 'LoadState', 'Result', 'MainPID', 'NRestarts', 'FragmentPath'];
  const r = await sb.exec(['systemctl', 'show', ...props.map((p) => `-p${p}`), unit]);
  const map = Object.fromEntries(r.stdout.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  return { ...map, MainPID: Number(map.MainPID ?? 0), NRestarts: Number(map.NRestarts ?? 0) } as UnitInfo;
}

/** The effective uid of a unit's main process, read from /proc inside the sandbox. */
export async function mainPidUid(sb: Sandbox, unit: string): Promise<number | null> {
  const { MainPID } = await unitInfo(sb, unit);
  if (!MainPID) return null;
  const status = await fs.readFile(sb.fsPath(`/proc/${MainPID}/status`), 'utf8').catch(() => '');
  const m = /^Uid:\s+\d+\s+(\d+)/m.exec(status);
  return m ? Number(m[1]) : null;
}

const HTTP_GET_PY = `
import json, sys, urllib.error, urllib.request
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5)
    print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": ""}))
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
`;

export type HttpAnswer = { status: number; body: string; error?: undefined } | { error: string; status?: undefined };

/** GET a URL from inside the sandbox's network namespace (the host cannot reach it). */
export async function httpGet(sb: Sandbox, url: string): Promise<HttpAnswer> {
  const r = await sb.exec(['/usr/bin/python3', '-c', HTTP_GET_PY, url]);
  if (r.exitCode !== 0) return { error: `python exit ${r.exitCode}: ${r.stderr}` };
  return JSON.parse(r.stdout) as HttpAnswer;
}

/** The version the web UI reports at host:port, or null with the reason. */
export async function servedVersion(sb: Sandbox, port = 8080, host = '127.0.0.1'): Promise<string | null> {
  const a = await httpGet(sb, `http://${host}:${port}/`);
  if (a.error !== undefined || a.status !== 200) return null;
  return (JSON.parse(a.body) as { version?: string }).version ?? null;
}

/** Poll until `fn` returns a value that `ok` accepts; returns the last value either way. */
export async function waitFor<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000, stepMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await fn();
  while (!ok(value) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, stepMs));
    value = await fn();
  }
  return value;
}

/** The version `/opt/smolotchi/current` points at (read on the host side of the bind mount). */
export async function currentVersion(sb: Sandbox): Promise<string | null> {
  const target = await fs.readlink(sb.fsPath('/opt/smolotchi/current')).catch(() => null);
  return target === null ? null : path.basename(target);
}

/** Fail early, and clearly, when the CLI was not built (`npm test` builds it; vitest alone does not). */
export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does it) before the e2e suite`);
}

/**
 * Settings the suite runs with: a settle window longer than the 2 s watchdog a fixture release
 * ships (SHORT_WATCHDOG_SEC), and start/HTTP timeouts short enough to keep failures quick.
 */
export function e2eSettings(source: string, extra: Record<string, string | number> = {}): Record<string, string | number> {
  return {
    SMOLOTCHI_RELEASE_SOURCE: source,
    SMOLOTCHI_RELEASE_SETTLE_SECONDS: 4,
    SMOLOTCHI_RELEASE_START_TIMEOUT: 30,
    SMOLOTCHI_RELEASE_HTTP_TIMEOUT: 10,
    ...extra,
  };
}

/** `systemd-analyze verify` on every installed smolotchi unit file (drop-ins load with them). */
export async function verifyInstalledUnits(sb: Sandbox): Promise<{ units: string[]; result: ExecResult }> {
  const names = await fs.readdir(sb.fsPath('/etc/systemd/system'));
  const units = names.filter((f) => /^smolotchi-.*\.(service|timer)$/.test(f)).sort();
  const result = await sb.exec(['systemd-analyze', 'verify', ...units.map((u) => `/etc/systemd/system/${u}`)]);
  return { units, result };
}

/** Collection-time gate of an e2e file: where the sandbox cannot run, skip loudly, never silently. */
export function sandboxAvailable(): boolean {
  const check = canRunSandbox();
  if (!check.ok) console.warn(`e2e (systemd sandbox) skipped: ${check.reason}`);
  return check.ok;
}

export interface Device {
  sb: Sandbox;
  /** The sample app's git repository (in the sandbox's work folder), the configured source. */
  repo: string;
  tags: Record<string, string>;
}

/**
 * A booted "device": a sandbox whose /etc/smolotchi/env names a sample repo of `versions` as the
 * release source, with `install` already installed when given.
 */
export async function bootDevice(
  versions: SampleVersion[],
  opts: { install?: string; settings?: Record<string, string | number> } = {},
): Promise<Device> {
  assertBuilt();
  const sb = await startSandbox();
  try {
    const { repo, tags } = await createSampleRepo(path.join(sb.workDir, 'repo'), versions);
    await writeEnvFile(sb, e2eSettings(repo, opts.settings));
    if (opts.install) {
      const r = await smolotchi(sb, ['release', 'install', opts.install]);
      if (r.exitCode !== 0) throw new Error(`installing ${opts.install} failed: ${explain(r)}`);
    }
    return { sb, repo, tags };
  } catch (err) {
    await sb.stop();
    throw err;
  }
}
