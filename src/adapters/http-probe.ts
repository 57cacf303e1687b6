/**
 * One HTTP GET with a deadline: the health gate's proof that the web UI answers.
 * Never waits past its deadline, and never counts a 5xx answer as up.
 */

// node:http (a dozen internal modules) loads on the first probe: most commands never probe.
let http: typeof import('node:http') | undefined;

export interface ProbeResult {
  ok: boolean;
  status?: number;
  error?: string;
}

/** One GET with a deadline; any status below 500 means the web UI is up and answering. */
export async function probeHttp(host: string, port: number, timeoutMs: number, path = '/'): Promise<ProbeResult> {
  const { get } = (http ??= await import('node:http'));
  return new Promise((resolve) => {
    const req = get({ host, port, path, timeout: timeoutMs, headers: { 'user-agent': 'smolotchi-release-health' } }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      resolve(status > 0 && status < 500 ? { ok: true, status } : { ok: false, status, error: `HTTP ${status}` });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ ok: false, error: (err as NodeJS.ErrnoException).code ?? err.message }));
  });
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
