/**
 * Canonical JSON (sorted keys, no whitespace, UTF-8, integers only): one value, one encoding.
 * Never accepts another spelling when parsing: signed bytes must re-derive byte for byte.
 */

export type CanonicalValue = string | number | boolean | null | CanonicalValue[] | { [key: string]: CanonicalValue };

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    // Floats and exponents have several spellings; nothing we sign needs them.
    if (!Number.isSafeInteger(value)) throw new TypeError(`canonical JSON allows safe integers only, not ${value}`);
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  throw new TypeError(`canonical JSON cannot encode ${typeof value}`);
}

export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

/**
 * Decode and parse bytes that must be canonical JSON; `fail` makes the caller's error. Refuses
 * invalid UTF-8, a BOM, duplicate keys, whitespace and any other spelling than the canonical one.
 */
export function parseCanonical(bytes: Uint8Array, fail: (why: string) => Error): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw fail('not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // V8's message quotes the input: control characters would break the one-line error.
    throw fail('not valid JSON');
  }
  let again: string;
  try {
    again = canonicalJson(value);
  } catch (err) {
    throw fail((err as Error).message);
  }
  // JSON.parse keeps the last of duplicate keys; a byte comparison catches that and every other variant.
  if (again !== text) throw fail('not in canonical form (sorted keys, no whitespace, integers only, one key once)');
  return value;
}
