import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { writeWheel } from './wheels.js';

/**
 * The sample smolotchi app used by the tests, the demo and the bench: a tiny pure-stdlib Python
 * package with the real app's entry points (core with sd_notify READY/WATCHDOG, web over HTTP,
 * ai worker, prune, display) and versions built to fail in each way the health gate must catch.
 */

export type AppBehaviour =
  | 'good'
  | 'web-never-starts'
  | 'core-crash-loop'
  | 'unimportable'
  | 'watchdog-exceeded'
  | 'health-check-fails'
  | 'web-fails-on-marker';

export interface SampleVersion {
  version: string;
  behaviour?: AppBehaviour;
  /** Ship the tool's bundled units as the release's own `packaging/systemd/`. */
  extraUnits?: boolean;
  /** Ship its own `packaging/systemd/` without this unit (e.g. 'smolotchi-ai.service'). */
  dropUnit?: string;
  /** More files of the release (relative path -> content, or content and mode), written last. */
  files?: Record<string, string | { content: string; mode: number }>;
  /** Pure-Python wheels shipped in `wheels/` ([name, version]), for offline requirements. */
  wheels?: Array<[string, string]>;
  /**
   * The core migrates the app's database (SMOLOTCHI_DB) to this schema version at start, as the
   * real app does (a schema_version table), and records one `events` row per start.
   */
  schema?: number;
}

/** The long-running services of the app with default settings (no opt-in display or core-net). */
export const APP_SERVICES = ['smolotchi-core.service', 'smolotchi-ai.service', 'smolotchi-web.service'];

/**
 * A device-local file that makes a `web-fails-on-marker` release's web UI refuse to start, so one
 * release fails on chosen devices only (a fleet rollout's failing batch). /etc/smolotchi is private
 * to each sandboxed device.
 */
export const FAIL_WEB_MARKER = '/etc/smolotchi/fail-web';

/** WatchdogSec of the core units a `watchdog-exceeded` release ships: the gate's settle window must exceed it. */
export const SHORT_WATCHDOG_SEC = 2;

/** Write the app's tree for one version into `dir` (created if missing; existing files are overwritten). */
export async function writeSampleApp(dir: string, v: SampleVersion): Promise<void> {
  const behaviour = v.behaviour ?? 'good';
  const files: Record<string, string> = {
    'smolotchi/__init__.py': `"""smolotchi sample app (test fixture)."""\n__version__ = ${JSON.stringify(v.version)}\nBEHAVIOUR = ${JSON.stringify(behaviour)}\nFAIL_WEB_MARKER = ${JSON.stringify(FAIL_WEB_MARKER)}\nSCHEMA = ${v.schema ?? 0}\n`,
    'smolotchi/cli.py':
      behaviour === 'unimportable'
        ? `raise ImportError("smolotchi ${v.version}: this fixture release is built to be unimportable")\n`
        : PY_CLI,
    'smolotchi/ai/__init__.py': '',
    'smolotchi/ai/worker.py': PY_AI_WORKER,
    'requirements/base.txt': '# The sample app needs nothing beyond the standard library (no network in tests).\n',
    'config.toml': `[web]\nhost = "0.0.0.0"\nport = 8080\n\n[core]\nname = "smolotchi-sample"\n`,
    'README.md': `# smolotchi ${v.version} (sample app, behaviour: ${behaviour})\n`,
  };
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(dir, rel);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
  }
  if (behaviour === 'health-check-fails') {
    const file = path.join(dir, 'packaging', 'health-check');
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, PY_HEALTH_CHECK_FAILS, { mode: 0o755 });
    await fs.chmod(file, 0o755);
  }
  if (v.extraUnits || v.dropUnit || behaviour === 'watchdog-exceeded') {
    await writeOwnUnits(path.join(dir, 'packaging', 'systemd'), v.dropUnit, behaviour === 'watchdog-exceeded');
  }
  for (const [rel, spec] of Object.entries(v.files ?? {})) {
    const file = path.join(dir, rel);
    const { content, mode } = typeof spec === 'string' ? { content: spec, mode: 0o644 } : spec;
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
    await fs.chmod(file, mode);
  }
  if (v.wheels?.length) {
    await fs.mkdir(path.join(dir, 'wheels'), { recursive: true });
    for (const [name, version] of v.wheels) await writeWheel('/usr/bin/python3', path.join(dir, 'wheels'), name, version);
  }
}

/**
 * A release's own packaging/systemd: a copy of the tool's bundled templates (minus the tool-owned
 * release-check unit), optionally without one unit or with a watchdog short enough to trip.
 */
async function writeOwnUnits(target: string, dropUnit: string | undefined, shortWatchdog: boolean): Promise<void> {
  const bundled = bundledUnitsDir();
  const skip = (name: string) =>
    name === 'smolotchi-release-check.service' || (dropUnit !== undefined && (name === dropUnit || name === `${dropUnit}.d`));
  await fs.cp(bundled, target, { recursive: true, filter: (src) => !skip(path.basename(src)) });
  if (!shortWatchdog) return;
  for (const unit of ['smolotchi-core.service', 'smolotchi-core-net.service']) {
    const file = path.join(target, unit);
    if (!existsSync(file)) continue;
    const text = await fs.readFile(file, 'utf8');
    await fs.writeFile(file, text.replace(/^WatchdogSec=.*$/m, `WatchdogSec=${SHORT_WATCHDOG_SEC}`));
  }
}

/** The tool's bundled unit templates, found from this module under scripts/ or dist/scripts/. */
function bundledUnitsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'packaging', 'systemd');
    if (existsSync(path.join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('sample-app: cannot find the bundled packaging/systemd templates');
    dir = parent;
  }
}

// The developer's own git config (signing, hooks, templates) must not change a fixture.
const GIT_ENV = { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: os.devNull, GIT_TERMINAL_PROMPT: '0' };

async function git(cwd: string, args: string[]): Promise<string> {
  const r = await execa('git', args, { cwd, env: GIT_ENV, stdin: 'ignore', timeout: 600_000 }); // hang guard
  return r.stdout.trim();
}

/** A git repository with one commit and one annotated tag `v<ver>` per version, in order. */
export async function createSampleRepo(
  dir: string,
  versions: SampleVersion[],
): Promise<{ repo: string; tags: Record<string, string> }> {
  await fs.mkdir(dir, { recursive: true });
  await git(dir, ['init', '--quiet', '--initial-branch=main']);
  const config: [string, string][] = [
    ['user.name', 'Sample Maintainer'],
    ['user.email', 'maintainer@example.invalid'],
    ['commit.gpgSign', 'false'],
    ['tag.gpgSign', 'false'],
    ['gc.auto', '0'],
    ['core.autocrlf', 'false'],
  ];
  for (const [k, val] of config) await git(dir, ['config', k, val]);
  const tags: Record<string, string> = {};
  for (const v of versions) {
    // Each version is a whole tree: files a later version drops must disappear from it.
    for (const entry of await fs.readdir(dir)) {
      if (entry !== '.git') await fs.rm(path.join(dir, entry), { recursive: true, force: true });
    }
    await writeSampleApp(dir, v);
    await git(dir, ['add', '--all']);
    await git(dir, ['commit', '--quiet', '--allow-empty', '-m', `smolotchi ${v.version} (${v.behaviour ?? 'good'})`]);
    await git(dir, ['tag', '-a', '-m', `release ${v.version}`, '--', `v${v.version}`]);
    tags[v.version] = await git(dir, ['rev-parse', 'HEAD']);
  }
  return { repo: dir, tags };
}

// ---- The Python sources (String.raw: backslashes are Python's, not JavaScript's). ----

const PY_CLI = String.raw`"""smolotchi sample app: the real app's entry points, built from the standard library only."""
import argparse
import json
import os
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from smolotchi import BEHAVIOUR, FAIL_WEB_MARKER, SCHEMA, __version__


def log(msg):
    print(f"smolotchi {__version__}: {msg}", flush=True)


def sd_notify(state):
    """Send one sd_notify datagram; abstract socket names start with '@'."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(addr)
        s.sendall(state.encode())
    return True


# Migration n takes the schema from n-1 to n; the app's own only ever go forward.
MIGRATIONS = {
    1: ["CREATE TABLE events (id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL, version TEXT NOT NULL)"],
    2: ["ALTER TABLE events ADD COLUMN detail TEXT"],
    3: ["CREATE TABLE wifi_targets (id INTEGER PRIMARY KEY, ssid TEXT)"],
}


def migrate_db():
    import sqlite3
    path = os.environ.get("SMOLOTCHI_DB", "/var/lib/smolotchi/events.db")
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_ts REAL NOT NULL, note TEXT)")
    current = con.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
    with con:
        for n in range(current + 1, SCHEMA + 1):
            for sql in MIGRATIONS[n]:
                con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (n, time.time(), __version__))
        con.execute("INSERT INTO events (ts, kind, version) VALUES (?, 'core-started', ?)", (time.time(), __version__))
    con.close()
    log(f"database {path} at schema {max(current, SCHEMA)}")


def cmd_core(args):
    log(f"core starting (behaviour {BEHAVIOUR})")
    if SCHEMA:
        migrate_db()
    sd_notify(f"READY=1\nSTATUS=smolotchi {__version__} core running")
    usec = int(os.environ.get("WATCHDOG_USEC", "0") or "0")
    interval = usec / 3e6 if usec else 1.0
    started = time.monotonic()
    while True:
        if BEHAVIOUR == "core-crash-loop" and time.monotonic() - started > 1.0:
            log("core: crashing on purpose (fixture core-crash-loop)")
            return 1
        if BEHAVIOUR != "watchdog-exceeded":
            sd_notify("WATCHDOG=1")
        time.sleep(min(interval, 0.25) if BEHAVIOUR == "core-crash-loop" else interval)


def probe_write(path):
    try:
        with open(path, "w") as f:
            f.write("probe")
        os.unlink(path)
        return {"writable": True, "error": None}
    except OSError as e:
        return {"writable": False, "error": f"{type(e).__name__}: {e}"}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/" or self.path == "/health":
            body = {"app": "smolotchi", "version": __version__, "behaviour": BEHAVIOUR,
                    "pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(), "ok": True}
        elif self.path == "/probe/write-code":
            # The running release's own tree: services must find it read-only.
            code = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            body = {"path": code, **probe_write(os.path.join(code, ".smolotchi-write-probe"))}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass


def cmd_web(args):
    if BEHAVIOUR == "web-never-starts":
        print(f"smolotchi {__version__}: web: refusing to start (fixture web-never-starts)", file=sys.stderr, flush=True)
        return 1
    if BEHAVIOUR == "web-fails-on-marker" and os.path.exists(FAIL_WEB_MARKER):
        print(f"smolotchi {__version__}: web: refusing to start ({FAIL_WEB_MARKER} exists on this device)", file=sys.stderr, flush=True)
        return 1
    host = args.host or os.environ.get("SMOLOTCHI_WEB_HOST") or "127.0.0.1"
    port = int(args.port or os.environ.get("SMOLOTCHI_WEB_PORT") or "8080")
    server = ThreadingHTTPServer((host, port), Handler)
    log(f"web listening on {host}:{port}")
    server.serve_forever()
    return 0


def cmd_prune(args):
    log("prune: nothing to prune")
    return 0


def cmd_display(args):
    log("display: drawing (no hardware in the sample app)")
    while True:
        time.sleep(5)


def cmd_ai(args):
    if args.ai_command != "worker":
        print("usage: smolotchi ai worker [--loop]", file=sys.stderr)
        return 2
    from smolotchi.ai import worker
    return worker.main(["--loop"] if args.loop else [])


def cmd_status(args):
    """What an operator's "smolotchi status" reaches: who runs it, which release, which files."""
    print(json.dumps({"app": "smolotchi", "version": __version__, "uid": os.getuid(), "db": args.db,
                      "config": args.config, "artifact_root": args.artifact_root}))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="smolotchi")
    parser.add_argument("--version", action="version", version=__version__)
    # Global options as the real app's CLI has them (its wrapper passes all three).
    parser.add_argument("--db")
    parser.add_argument("--artifact-root")
    parser.add_argument("--config")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status")
    sub.add_parser("core")
    web = sub.add_parser("web")
    web.add_argument("--host")
    web.add_argument("--port")
    sub.add_parser("prune")
    sub.add_parser("display")
    ai = sub.add_parser("ai")
    ai.add_argument("ai_command", nargs="?")
    ai.add_argument("--loop", action="store_true")
    args = parser.parse_args(argv)
    handler = {"status": cmd_status, "core": cmd_core, "web": cmd_web, "prune": cmd_prune, "display": cmd_display, "ai": cmd_ai}
    return handler[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
`;

const PY_AI_WORKER = String.raw`"""smolotchi sample app: the AI worker (python -m smolotchi.ai.worker --loop)."""
import argparse
import sys
import time

from smolotchi import __version__


def main(argv=None):
    parser = argparse.ArgumentParser(prog="smolotchi-ai-worker")
    parser.add_argument("--loop", action="store_true")
    args = parser.parse_args(argv)
    print(f"smolotchi {__version__}: ai worker started", flush=True)
    while args.loop:
        time.sleep(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
`;

const PY_HEALTH_CHECK_FAILS = String.raw`#!/bin/sh
# Shipped by the fixture release 'health-check-fails': the release's own check says no.
echo "health-check: sample app reports itself unhealthy (fixture health-check-fails)" >&2
exit 1
`;
