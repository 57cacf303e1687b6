import { spawn } from 'node:child_process';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

/**
 * A release server on loopback, as operators run one: `/git/<repo>` is real git smart HTTP
 * (`git http-backend` behind node's http server, CGI by hand), `/files/` a static folder of
 * archives with a directory listing like nginx's autoindex. Random free port; plain HTTP.
 */
export interface ReleaseServer {
  url: string;
  /** How many requests reached each prefix (`git`, `files`): a test can tell who was asked. */
  hits: Record<string, number>;
  /** Every Authorization header that reached the server, in order (a test can tell who sent credentials). */
  authorizations: string[];
  close(): Promise<void>;
}

export interface ReleaseServerOptions {
  gitRoot: string;
  filesDir: string;
  /** Answer 401 (Basic) to any request without these credentials, as a private server does. */
  basicAuth?: { username: string; password: string };
  /** Answer every request with a 302 to this origin (same path), as a moved server does. */
  redirectTo?: string;
}

function serveGit(projectRoot: string, req: http.IncomingMessage, res: http.ServerResponse, pathInfo: string, query: string): void {
  const cgi = spawn('git', ['http-backend'], {
    env: {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      GIT_CONFIG_NOSYSTEM: '1',
      HOME: projectRoot,
      PATH_INFO: pathInfo,
      QUERY_STRING: query,
      REQUEST_METHOD: req.method ?? 'GET',
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      CONTENT_LENGTH: req.headers['content-length'] ?? '',
      HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
      GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
      REMOTE_ADDR: '127.0.0.1',
    },
  });
  req.pipe(cgi.stdin);
  let head = Buffer.alloc(0);
  let headerDone = false;
  cgi.stdout.on('data', (chunk: Buffer) => {
    if (headerDone) return void res.write(chunk);
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end === -1) return;
    headerDone = true;
    let status = 200;
    for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
      const i = line.indexOf(':');
      const [name, value] = [line.slice(0, i).trim(), line.slice(i + 1).trim()];
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
      else res.setHeader(name, value);
    }
    res.writeHead(status);
    res.write(head.subarray(end + 4));
  });
  cgi.on('close', () => res.end());
}

function serveFiles(dir: string, rel: string, res: http.ServerResponse): void {
  const file = path.join(dir, path.normalize(`/${rel}`));
  const s = statSync(file, { throwIfNoEntry: false });
  if (s?.isDirectory()) {
    const links = readdirSync(file).map((n) => `<a href="${encodeURIComponent(n)}">${n}</a>`);
    res.writeHead(200, { 'content-type': 'text/html' }).end(`<html><body><h1>Index of /${rel}</h1><pre>\n${links.join('\n')}\n</pre></body></html>\n`);
  } else if (s?.isFile()) {
    res.writeHead(200, { 'content-length': s.size });
    createReadStream(file).pipe(res);
  } else {
    res.writeHead(404).end('not found');
  }
}

export async function startReleaseServer(opts: ReleaseServerOptions): Promise<ReleaseServer> {
  const hits: Record<string, number> = { git: 0, files: 0 };
  const authorizations: string[] = [];
  const expected = opts.basicAuth && `Basic ${Buffer.from(`${opts.basicAuth.username}:${opts.basicAuth.password}`).toString('base64')}`;
  const server = http.createServer((req, res) => {
    if (req.headers.authorization) authorizations.push(req.headers.authorization);
    if (opts.redirectTo) return void res.writeHead(302, { location: `${opts.redirectTo}${req.url ?? '/'}` }).end();
    const url = new URL(req.url ?? '/', 'http://x');
    const [, prefix, ...rest] = url.pathname.split('/');
    const rel = decodeURIComponent(rest.join('/'));
    if (prefix === 'git' || prefix === 'files') hits[prefix]!++;
    if (expected && req.headers.authorization !== expected) {
      req.resume();
      return void res.writeHead(401, { 'www-authenticate': 'Basic realm="releases"' }).end('authentication required\n');
    }
    if (prefix === 'git') {
      serveGit(opts.gitRoot, req, res, `/${rel}`, url.search.slice(1));
    } else if (prefix === 'files') {
      serveFiles(opts.filesDir, rel, res);
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    authorizations,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
