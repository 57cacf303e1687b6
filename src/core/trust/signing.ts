/**
 * ed25519 signing and verifying of manifest bytes, keys named by id (node:crypto only).
 * Never accepts another algorithm, an unknown key or a revoked one.
 */

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalBytes, parseCanonical } from './canonical-json.js';
import { IntegrityError } from '../errors.js';

/**
 * ed25519 signatures over manifest bytes (node:crypto only). A key is named by its id: the first
 * 16 hex digits of sha256 over its SubjectPublicKeyInfo DER, the same on the packing machine and
 * on the device whatever the file is called.
 */

export const MAX_SIGNATURE_BYTES = 4096;
export const MAX_KEY_FILE_BYTES = 16 * 1024;
// Domain separation: a signature over a manifest can never be replayed as one over anything else.
const CONTEXT = Buffer.from('smolotchi-release manifest v1\n', 'utf8');
const KEY_ID = /^[0-9a-f]{16}$/;
const BASE64 = /^[A-Za-z0-9+/]{86}==$/; // exactly 64 bytes, one spelling

export interface SignatureFile {
  schemaVersion: 1;
  algorithm: 'ed25519';
  keyId: string;
  signature: string;
}

export function isKeyId(s: string): boolean {
  return KEY_ID.test(s);
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export function generateSigningKey(): { keyId: string; privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    keyId: keyIdOf(publicKey),
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** An ed25519 public key from PEM; anything else (RSA, ed448, junk) is refused, never guessed. */
export function parsePublicKey(pem: Buffer | string, what: string): { key: KeyObject; keyId: string } {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw new IntegrityError(`${what} is not a PEM public key`);
  }
  // One algorithm only: no downgrade to a weaker or attacker-chosen scheme.
  if (key.asymmetricKeyType !== 'ed25519') throw new IntegrityError(`${what} is a ${key.asymmetricKeyType ?? 'unknown'} key; only ed25519 keys are trusted`);
  return { key, keyId: keyIdOf(key) };
}

export function parsePrivateKey(pem: Buffer | string, what: string): { key: KeyObject; keyId: string } {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new IntegrityError(`${what} is not an unencrypted PEM private key`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new IntegrityError(`${what} is a ${key.asymmetricKeyType ?? 'unknown'} key; releases are signed with ed25519`);
  return { key, keyId: keyIdOf(createPublicKey(key)) };
}

/** The detached signature file for these manifest bytes (canonical JSON, deterministic). */
export function signManifest(manifest: Uint8Array, privateKey: KeyObject, keyId: string): Buffer {
  const signature = sign(null, Buffer.concat([CONTEXT, manifest]), privateKey).toString('base64');
  const file: SignatureFile = { schemaVersion: 1, algorithm: 'ed25519', keyId, signature };
  return canonicalBytes(file);
}

export function parseSignatureFile(bytes: Uint8Array): { keyId: string; signature: Buffer } {
  const fail = (why: string) => new IntegrityError(`signature file refused: ${why}`);
  if (bytes.length === 0) throw fail('empty');
  if (bytes.length > MAX_SIGNATURE_BYTES) throw fail(`larger than ${MAX_SIGNATURE_BYTES} bytes`);
  const v = parseCanonical(bytes, fail) as Partial<Record<keyof SignatureFile, unknown>> | null;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.keys(v).sort().join() !== 'algorithm,keyId,schemaVersion,signature') {
    throw fail('fields must be exactly algorithm, keyId, schemaVersion, signature');
  }
  if (v.schemaVersion !== 1) throw fail(`unsupported schemaVersion ${JSON.stringify(v.schemaVersion)}`);
  if (v.algorithm !== 'ed25519') throw fail(`algorithm ${JSON.stringify(v.algorithm)} is not ed25519`);
  if (typeof v.keyId !== 'string' || !isKeyId(v.keyId)) throw fail('keyId is not 16 lowercase hex digits');
  if (typeof v.signature !== 'string' || !BASE64.test(v.signature)) throw fail('signature is not 64 bytes of base64');
  const signature = Buffer.from(v.signature, 'base64');
  if (signature.toString('base64') !== v.signature) throw fail('signature is not in canonical base64');
  return { keyId: v.keyId, signature };
}

export interface TrustedKeys {
  keys: ReadonlyMap<string, KeyObject>;
  revoked: ReadonlySet<string>;
}

/** The key id that signed these bytes, or IntegrityError: unknown, revoked or not matching. */
export function verifyManifestSignature(manifest: Uint8Array, signatureFile: Uint8Array, trust: TrustedKeys): string {
  const { keyId, signature } = parseSignatureFile(signatureFile);
  // Revocation wins over presence: a revoked key stays refused even while its .pub is still there.
  if (trust.revoked.has(keyId)) throw new IntegrityError(`manifest is signed by revoked key ${keyId}`);
  const key = trust.keys.get(keyId);
  if (!key) throw new IntegrityError(`manifest is signed by unknown key ${keyId}`, 'put its .pub into /etc/smolotchi/keys if you trust it');
  if (!verify(null, Buffer.concat([CONTEXT, manifest]), key, signature)) {
    throw new IntegrityError(`bad signature: the manifest was not signed by key ${keyId} (altered or signed by another key)`);
  }
  return keyId;
}
