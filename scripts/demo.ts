/**
 * `npm run demo`: the main job on an embedded default, in a sandbox root, with no root rights and
 * no network. Builds a sample smolotchi app with four tagged versions, installs one, upgrades,
 * installs a broken one (the health gate catches it and rolls back by itself), rolls back by
 * hand, prunes, and prints status, list and history. Where the machine allows it (root), the same
 * runs again on a real systemd booted in private namespaces (scripts/demo-systemd.ts).
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { signedReleasesDemo } from './demo-signed.js';
import { realSystemdDemo } from './demo-systemd.js';
import { createSampleRepo } from './sample-app.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.resolve(here, '..', 'src', 'cli.js');
const keep = process.argv.includes('--keep-sandbox');

function banner(text: string): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);
}

async function smolotchi(root: string, args: string[], expectExit = 0): Promise<void> {
  process.stdout.write(`$ smolotchi release ${args.join(' ')}\n`);
  mkdirSync(root, { recursive: true }); // --root must exist: the tool refuses a typo'd one
  const r = await execa(process.execPath, [cli, 'release', ...args, '--root', root], { reject: false, all: true, env: { NO_COLOR: '1' } });
  if (r.all) process.stdout.write(r.all.replace(/^/gm, '  ') + '\n');
  process.stdout.write(`  (exit ${r.exitCode})\n`);
  if (r.exitCode !== expectExit) throw new Error(`expected exit ${expectExit}, got ${r.exitCode}`);
}

async function main(): Promise<void> {
  // Not under /tmp when a systemd sandbox may boot (it can empty /tmp); a private folder either way.
  const work = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'smolotchi-demo-')));
  const root = path.join(work, 'root');
  try {
    banner('a sample smolotchi app with four tagged versions (1.2.0 is built to fail its health check)');
    const { repo } = await createSampleRepo(path.join(work, 'app'), [
      { version: '1.0.0' },
      { version: '1.1.0' },
      { version: '1.2.0', behaviour: 'health-check-fails' },
      { version: '1.3.0-rc.1' },
    ]);
    process.stdout.write(`repository: ${repo}\nsandbox root: ${root}\n`);
    process.stdout.write(
      'note: no systemd is used by this demo (it runs without root in a --root sandbox), so unit files are\n' +
        'written but service restarts are skipped; the health gate runs the release\'s own health check.\n' +
        'The end-to-end suite (npm test, as root) and the last part of this demo (as root) use a real systemd.\n',
    );

    banner('install 1.0.0');
    await smolotchi(root, ['install', '1.0.0', '--source', repo]);
    banner('upgrade to 1.1.0 (its venv is cloned from 1.0.0 by hard links: same requirements)');
    await smolotchi(root, ['install', '1.1.0', '--source', repo]);
    banner('install latest = the broken 1.2.0 (1.3.0-rc.1 is a prerelease): the gate fails, the tool rolls back to 1.1.0 by itself (exit 5)');
    await smolotchi(root, ['install', 'latest', '--source', repo], 5);
    banner('a bad release is not installed again without --force');
    await smolotchi(root, ['install', '1.2.0', '--source', repo], 1);
    banner('bad input is refused before it touches anything (exit 2)');
    await smolotchi(root, ['install', '../../etc', '--source', repo], 2);
    banner('roll back by hand to 1.0.0, then forward again to the last good release');
    await smolotchi(root, ['rollback', '--to', '1.0.0']);
    await smolotchi(root, ['rollback']);
    banner('prune to one release: current, last good and rollback target are protected');
    await smolotchi(root, ['prune', '--keep', '1', '--dry-run']);
    await smolotchi(root, ['prune', '--keep', '1']);
    banner('status, list, history');
    await smolotchi(root, ['status']);
    await smolotchi(root, ['list']);
    await smolotchi(root, ['history']);
    await signedReleasesDemo(work, repo, smolotchi, banner);
    await realSystemdDemo(banner);
    banner('demo finished: every step behaved as expected');
  } finally {
    if (keep) process.stdout.write(`sandbox kept at ${work}\n`);
    else if (existsSync(work)) rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exitCode = 1;
});
