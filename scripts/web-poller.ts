import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Sandbox } from './systemd-sandbox.js';

/**
 * The web UI as a client inside a sandbox sees it (the host cannot reach its loopback): one
 * request, or a poller that asks every few milliseconds and logs each answer to a file the host
 * can read while it runs. Used by the demo and by the downtime bench.
 */

// argv: url interval-ms out-file stop-file max-seconds. One line per request:
// "<start ms> <end ms> ok <version>" | "<start ms> <end ms> http <status>" | "... fail <error type>".
const POLLER_PY = String.raw`
import json, os, sys, time, urllib.error, urllib.request
url, interval, out, stop, limit = sys.argv[1], float(sys.argv[2]) / 1000, sys.argv[3], sys.argv[4], float(sys.argv[5])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + limit
tick = time.monotonic()
with open(out, "w", buffering=1) as log:
    while time.monotonic() < deadline and not os.path.exists(stop):
        start = time.time()
        try:
            with opener.open(url, timeout=1) as r:
                version = json.loads(r.read()).get("version")
                result = f"ok {version}" if r.status == 200 and version else f"http {r.status}"
        except urllib.error.HTTPError as e:
            result = f"http {e.code}"
        except Exception as e:
            result = "fail " + type(getattr(e, "reason", e)).__name__
        log.write(f"{start * 1000:.1f} {time.time() * 1000:.1f} {result}\n")
        if interval <= 0:
            break
        tick += interval
        delay = tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            tick = time.monotonic()
`;

export interface Poll {
  /** Wall-clock ms (the sandbox shares the host's clock) when the request started and ended. */
  startMs: number;
  endMs: number;
  /** The version a 200 answer reported, else null. */
  version: string | null;
  /** Why there was no answer (`ConnectionRefusedError`, `http 502`...), else null. */
  error: string | null;
}

export function parsePolls(text: string): Poll[] {
  const polls: Poll[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+\.\d) (\d+\.\d) (ok|http|fail) (\S+)$/.exec(line);
    if (!m) continue; // a line still being written
    const ok = m[3] === 'ok';
    polls.push({ startMs: Number(m[1]), endMs: Number(m[2]), version: ok ? m[4]! : null, error: ok ? null : m[3] === 'http' ? `http ${m[4]}` : m[4]! });
  }
  return polls;
}

export interface Poller {
  /** The answers so far. */
  read(): Promise<Poll[]>;
  /** Wait (at most `timeoutMs`) until the latest answer satisfies `ok`; false if it never did. */
  waitFor(ok: (p: Poll) => boolean, timeoutMs: number): Promise<boolean>;
  /** Stop polling; every answer. */
  stop(): Promise<Poll[]>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Start polling `url` every `intervalMs` inside the sandbox; resolves once the first answer is logged. */
export async function startPoller(sb: Sandbox, url: string, intervalMs = 10, maxSeconds = 300): Promise<Poller> {
  const base = path.join(sb.workDir, `poll-${randomBytes(4).toString('hex')}`);
  const out = `${base}.log`;
  const stopFile = `${base}.stop`;
  let exited = false;
  const run = sb
    .exec(['/usr/bin/python3', '-c', POLLER_PY, url, String(intervalMs), out, stopFile, String(maxSeconds)], { timeoutMs: (maxSeconds + 30) * 1000 })
    .finally(() => (exited = true));
  const read = async () => parsePolls(await fs.readFile(out, 'utf8').catch(() => ''));
  const waitFor = async (ok: (p: Poll) => boolean, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const last = (await read()).at(-1);
      if (last && ok(last)) return true;
      if (exited || Date.now() > deadline) return false;
      await sleep(25);
    }
  };
  if (!(await waitFor(() => true, 10_000))) {
    const r = await run;
    throw new Error(`web poller did not start (exit ${r.exitCode}): ${r.stderr.trim()}`);
  }
  return {
    read,
    waitFor,
    async stop() {
      await fs.writeFile(stopFile, '');
      await run;
      const polls = await read();
      for (const f of [out, stopFile]) if (existsSync(f)) await fs.rm(f);
      return polls;
    },
  };
}

/** One request from inside: the version the web UI reports, or why there is none. */
export async function webAnswer(sb: Sandbox, url: string): Promise<Poll> {
  const out = path.join(sb.workDir, `ask-${randomBytes(4).toString('hex')}.log`);
  const r = await sb.exec(['/usr/bin/python3', '-c', POLLER_PY, url, '0', out, `${out}.stop`, '30'], { timeoutMs: 30_000 });
  const poll = parsePolls(await fs.readFile(out, 'utf8').catch(() => ''))[0];
  await fs.rm(out, { force: true });
  return poll ?? { startMs: 0, endMs: 0, version: null, error: `poller exit ${r.exitCode}: ${r.stderr.trim()}` };
}
