import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { APP_SERVICES, createSampleRepo } from './sample-app.js';
import { canRunSandbox, startSandbox, type Sandbox } from './systemd-sandbox.js';
import { webAnswer } from './web-poller.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js');
const WEB = 'http://127.0.0.1:8080/';
// A short settle window keeps the demo quick; the default is 5 s.
const SETTINGS = { SMOLOTCHI_RELEASE_SETTLE_SECONDS: 2, SMOLOTCHI_RELEASE_START_TIMEOUT: 20, SMOLOTCHI_RELEASE_HTTP_TIMEOUT: 5 };

/**
 * The demo's real-systemd part, where the machine allows it (root, namespaces): the CLI runs
 * inside a booted systemd with its production paths, no --root, exactly as on a device; the
 * services really restart and a release whose web never starts is rolled back by itself.
 */
export async function realSystemdDemo(banner: (t: string) => void): Promise<void> {
  const can = canRunSandbox();
  if (!can.ok) {
    process.stdout.write(`\nreal systemd part skipped: ${can.reason}\n`);
    return;
  }
  banner('the same on a real systemd (root: booted in private namespaces)');
  const sb = await startSandbox();
  try {
    const { repo } = await createSampleRepo(path.join(sb.workDir, 'app'), [
      { version: '1.0.0' },
      { version: '1.1.0' },
      { version: '1.2.0', behaviour: 'web-never-starts' },
    ]);
    const env = Object.entries({ SMOLOTCHI_RELEASE_SOURCE: repo, ...SETTINGS }).map(([k, v]) => `${k}=${v}\n`).join('');
    await fs.writeFile(sb.fsPath('/etc/smolotchi/env'), env);
    process.stdout.write(`a systemd is PID 1 in the sandbox; /etc/smolotchi/env inside:\n${env.trimEnd().replace(/^/gm, '  ')}\n`);

    banner('install 1.0.0, then upgrade to 1.1.0: units rendered, services restarted, the gate asks the web UI');
    await run(sb, ['install', '1.0.0']);
    await web(sb, '1.0.0');
    await run(sb, ['install', '1.1.0']);
    await web(sb, '1.1.0');

    banner('install 1.2.0, whose web never starts: the gate fails, the tool rolls back to 1.1.0 by itself (exit 5)');
    await run(sb, ['install', '1.2.0'], 5);
    await web(sb, '1.1.0');
    await shell(sb, ['systemctl', 'is-active', ...APP_SERVICES]);

    banner('status and history on the device');
    await run(sb, ['status']);
    await run(sb, ['history']);
  } finally {
    await sb.stop();
  }
}

async function run(sb: Sandbox, args: string[], expectExit = 0): Promise<void> {
  await shell(sb, [process.execPath, cli, 'release', ...args], expectExit, `smolotchi release ${args.join(' ')}`);
}

async function shell(sb: Sandbox, argv: string[], expectExit = 0, shown = argv.join(' ')): Promise<void> {
  process.stdout.write(`device# ${shown}\n`);
  const r = await sb.exec(argv, { env: { NO_COLOR: '1' } });
  const out = [r.stderr.trim(), r.stdout.trim()].filter(Boolean).join('\n');
  if (out) process.stdout.write(out.replace(/^/gm, '  ') + '\n');
  process.stdout.write(`  (exit ${r.exitCode})\n`);
  if (r.exitCode !== expectExit) throw new Error(`${shown}: expected exit ${expectExit}, got ${r.exitCode}`);
}

async function web(sb: Sandbox, expected: string): Promise<void> {
  process.stdout.write(`device# curl ${WEB}\n`);
  const answer = await webAnswer(sb, WEB);
  process.stdout.write(answer.version ? `  the web UI answers: smolotchi ${answer.version}\n` : `  no answer: ${answer.error}\n`);
  if (answer.version !== expected) throw new Error(`the web UI should serve ${expected}, got ${answer.version ?? answer.error}`);
}
