import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { probeHttp } from '../../../src/adapters/http-probe.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A web UI on a free loopback port that answers every GET with `status`. */
async function webUi(status: number): Promise<number> {
  const server = createServer((_req, res) => res.writeHead(status).end('x'));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('probeHttp (node:http loaded on the first probe)', () => {
  it('counts an answer below 500 as up, a 5xx as down', async () => {
    expect(await probeHttp('127.0.0.1', await webUi(200), 5_000)).toEqual({ ok: true, status: 200 });
    expect(await probeHttp('127.0.0.1', await webUi(404), 5_000)).toEqual({ ok: true, status: 404 });
    expect(await probeHttp('127.0.0.1', await webUi(503), 5_000)).toEqual({ ok: false, status: 503, error: 'HTTP 503' });
  });

  it('a port nobody listens on is down, with the error code as the reason', async () => {
    const port = await webUi(200);
    await new Promise((resolve) => servers.pop()!.close(resolve));
    expect(await probeHttp('127.0.0.1', port, 5_000)).toEqual({ ok: false, error: 'ECONNREFUSED' });
  });
});
