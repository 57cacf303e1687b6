import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { createSampleRepo, type SampleVersion } from '../../scripts/sample-app.js';
import { REPO_ROOT, canRunSandbox, startSandbox, type ExecOptions, type ExecResult, type Sandbox } from '../../scripts/systemd-sandbox.js';
import { HANG_GUARD_MS } from './cli.js';

export * from '../../scripts/systemd-sandbox.js';

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

/**
 * The web UI's answer once it serves `version`: after a raw `systemctl start`/`restart` (the web
 * unit is Type=exec, so systemctl returns before it listens). Returns the last answer either way.
 */
export const servedOnceUp = (sb: Sandbox, version: string): Promise<string | null> => waitFor(() => servedVersion(sb), (v) => v === version);

/**
 * Poll until `fn` returns a value that `ok` accepts; returns the last value either way. The default
 * deadline is only a hang guard: a loaded CI is slow, not wrong, so it must never decide a test.
 */
export async function waitFor<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = HANG_GUARD_MS, stepMs = 250): Promise<T> {
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
 * A settle window longer than the 2 s watchdog a fixture release ships (SHORT_WATCHDOG_SEC) and the
 * crash loop's restarts: what the suites that must see a unit fail after it started pass.
 */
export const CATCH_LATE_FAILURES_SETTLE_SECONDS = 4;

/**
 * Settings the suite runs with: a 1 s settle window (every gate passes through the settle step;
 * suites that must catch late failures pass CATCH_LATE_FAILURES_SETTLE_SECONDS), and start/HTTP
 * timeouts short enough to keep failures quick.
 */
export function e2eSettings(source: string, extra: Record<string, string | number> = {}): Record<string, string | number> {
  return {
    SMOLOTCHI_RELEASE_SOURCE: source,
    SMOLOTCHI_RELEASE_SETTLE_SECONDS: 1,
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
