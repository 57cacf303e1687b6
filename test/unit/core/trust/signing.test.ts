import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IntegrityError } from '../../../../src/core/errors.js';
import { generateSigningKey, keyIdOf, parsePrivateKey, parsePublicKey, signManifest, verifyManifestSignature } from '../../../../src/core/trust/signing.js';
import { loadTrust, parseRevoked } from '../../../../src/core/trust/trust.js';

const manifest = Buffer.from('{"version":"1.0.0"}');

function keyPair() {
  const k = generateSigningKey();
  return { ...k, ...parsePrivateKey(k.privatePem, 'test key') };
}

describe('ed25519 signatures', () => {
  it('key id = first 16 hex digits of sha256 over the SPKI DER', () => {
    const k = keyPair();
    const der = createPublicKey(k.publicPem).export({ type: 'spki', format: 'der' });
    expect(k.keyId).toBe(createHash('sha256').update(der).digest('hex').slice(0, 16));
    expect(keyIdOf(createPublicKey(k.publicPem))).toBe(k.keyId);
  });

  it('signs deterministically and verifies with the matching trusted key only', () => {
    const a = keyPair();
    const b = keyPair();
    const sig = signManifest(manifest, a.key, a.keyId);
    expect(signManifest(manifest, a.key, a.keyId).equals(sig)).toBe(true);
    const trust = { keys: new Map([[a.keyId, createPublicKey(a.publicPem)]]), revoked: new Set<string>() };
    expect(verifyManifestSignature(manifest, sig, trust)).toBe(a.keyId);
    expect(() => verifyManifestSignature(Buffer.from('{"version":"1.0.1"}'), sig, trust)).toThrow(/bad signature/);
    expect(() => verifyManifestSignature(manifest, signManifest(manifest, b.key, b.keyId), trust)).toThrow(/unknown key/);
    expect(() => verifyManifestSignature(manifest, signManifest(manifest, b.key, a.keyId), trust)).toThrow(/bad signature/);
    expect(() => verifyManifestSignature(manifest, sig, { ...trust, revoked: new Set([a.keyId]) })).toThrow(/revoked/);
  });

  it('refuses RSA, ed448 and x25519 keys, and junk, as trusted or signing keys', () => {
    const pem = (t: 'rsa' | 'ed448' | 'x25519') =>
      (t === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 1024 }) : generateKeyPairSync(t as 'ed448')).publicKey.export({ type: 'spki', format: 'pem' });
    for (const t of ['rsa', 'ed448', 'x25519'] as const) expect(() => parsePublicKey(pem(t), t)).toThrow(/only ed25519/);
    expect(() => parsePublicKey('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n', 'junk')).toThrow(IntegrityError);
    const rsaPriv = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    expect(() => parsePrivateKey(rsaPriv, 'rsa')).toThrow(/ed25519/);
  });
});

describe('trust store', () => {
  let dir: string;
  let keys: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'smolotchi-trust-'));
    keys = path.join(dir, 'etc', 'keys');
    mkdirSync(keys, { recursive: true, mode: 0o755 });
    for (const d of [keys, path.join(dir, 'etc')]) chmodSync(d, 0o755); // whatever the umask
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('no keys folder: null (unsigned releases accepted); an empty one requires nothing either', async () => {
    expect(await loadTrust(path.join(dir, 'missing'))).toBeNull();
    expect((await loadTrust(keys))?.requireSignatures).toBe(false);
  });

  it('loads *.pub by key id; a revocation list alone still requires signatures', async () => {
    const k = keyPair();
    writeFileSync(path.join(keys, 'whatever-name.pub'), k.publicPem, { mode: 0o644 });
    chmodSync(path.join(keys, 'whatever-name.pub'), 0o644);
    const trust = await loadTrust(keys);
    expect([...trust!.keys.keys()]).toEqual([k.keyId]);
    expect(trust!.requireSignatures).toBe(true);
    rmSync(path.join(keys, 'whatever-name.pub'));
    writeFileSync(path.join(keys, 'revoked'), `${k.keyId}\n`);
    chmodSync(path.join(keys, 'revoked'), 0o644);
    expect((await loadTrust(keys))!.requireSignatures).toBe(true);
  });

  it('refuses a group-writable parent folder and an oversized key file', async () => {
    chmodSync(path.join(dir, 'etc'), 0o775);
    await expect(loadTrust(keys)).rejects.toThrow(/writable by group or others/);
    chmodSync(path.join(dir, 'etc'), 0o755);
    writeFileSync(path.join(keys, 'big.pub'), 'x'.repeat(20_000));
    chmodSync(path.join(keys, 'big.pub'), 0o644);
    await expect(loadTrust(keys)).rejects.toThrow(/larger than/);
  });

  it('a keys "folder" that is a symlink is refused', async () => {
    const { symlinkSync } = await import('node:fs');
    symlinkSync(keys, path.join(dir, 'linked'));
    await expect(loadTrust(path.join(dir, 'linked'))).rejects.toThrow(/not a directory/);
  });

  it('revoked list: ids, comments and blank lines; anything else fails closed', () => {
    expect([...parseRevoked('# comment\n\n0123456789abcdef  # leaked\n', 'revoked')]).toEqual(['0123456789abcdef']);
    for (const bad of ['0123456789ABCDEF', 'not-a-key', '0123456789abcdef0', 'smolotchi-0123456789abcdef.pub']) {
      expect(() => parseRevoked(bad, 'revoked')).toThrow(IntegrityError);
    }
  });
});
