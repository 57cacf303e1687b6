import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';

type Run = (root: string, args: string[], expectExit?: number) => Promise<void>;

/**
 * The demo's signed-release part: a key pair, two signed releases, a device (a second sandbox
 * root) that trusts the key, a signed install, then an archive with one byte changed (and its
 * .sha256 fixed up, so only the signature can tell) refused with exit 4.
 */
export async function signedReleasesDemo(work: string, repo: string, smolotchi: Run, banner: (t: string) => void): Promise<void> {
  const root = path.join(work, 'signed-root');
  const keys = path.join(work, 'keys');
  const published = path.join(work, 'published');
  banner('signed releases: make a key pair, pack and sign 1.0.0 and 1.1.0 from their tags');
  await smolotchi(root, ['keygen', '--out', keys]);
  const key = path.join(keys, readdirSync(keys).find((n) => n.endsWith('.key'))!);
  for (const version of ['1.0.0', '1.1.0']) await smolotchi(root, ['pack', '--repo', repo, '--version', version, '--key', key, '--out', published]);

  banner('a device that trusts the key (its .pub in /etc/smolotchi/keys) installs the signed 1.0.0 and verifies it');
  const trusted = path.join(root, 'etc', 'smolotchi', 'keys');
  mkdirSync(trusted, { recursive: true });
  for (const dir of [trusted, path.dirname(trusted)]) chmodSync(dir, 0o755);
  const pub = readdirSync(keys).find((n) => n.endsWith('.pub'))!;
  copyFileSync(path.join(keys, pub), path.join(trusted, pub));
  chmodSync(path.join(trusted, pub), 0o644);
  await smolotchi(root, ['install', '1.0.0', '--source', published]);
  await smolotchi(root, ['verify']);

  banner('one byte of the 1.1.0 archive changed, its .sha256 recomputed: the signature still catches it (exit 4)');
  const tampered = path.join(work, 'tampered');
  mkdirSync(tampered);
  for (const name of readdirSync(published).filter((n) => n.startsWith('smolotchi-1.1.0.'))) copyFileSync(path.join(published, name), path.join(tampered, name));
  const archive = path.join(tampered, 'smolotchi-1.1.0.tar.gz');
  const bytes = readFileSync(archive);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  writeFileSync(archive, bytes);
  writeFileSync(`${archive}.sha256`, `${createHash('sha256').update(bytes).digest('hex')}  smolotchi-1.1.0.tar.gz\n`);
  await smolotchi(root, ['install', '1.1.0', '--source', tampered], 4);
  await smolotchi(root, ['list']);
}
