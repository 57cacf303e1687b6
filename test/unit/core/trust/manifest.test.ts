import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalBytes, canonicalJson } from '../../../../src/core/trust/canonical-json.js';
import { IntegrityError } from '../../../../src/core/errors.js';
import { encodeManifest, parseManifest, type Manifest } from '../../../../src/core/trust/manifest.js';
import { parseSignatureFile } from '../../../../src/core/trust/signing.js';
import { splitBytecode } from '../../../../src/core/build/release-files.js';
import type { TreeEntry } from '../../../../src/core/trust/tree-files.js';

const H = (c: string) => c.repeat(64);
const file = (path: string, sha = H('a'), mode = 0o644, size = 3): TreeEntry => ({ path, type: 'file', sha256: sha, size, mode });

function sample(): Manifest {
  return {
    schemaVersion: 1,
    name: 'smolotchi',
    version: '1.2.3',
    commit: 'c'.repeat(40),
    archive: { sha256: H('d'), size: 1234 },
    files: [
      file('README.md'),
      { path: 'packaging', type: 'dir' },
      { path: 'packaging/systemd', type: 'dir' },
      file('packaging/systemd/smolotchi-core.service', H('e')),
      { path: 'smolotchi', type: 'dir' },
      file('smolotchi/cli.py', H('b'), 0o755),
      { path: 'smolotchi/link', type: 'symlink', target: 'cli.py' },
    ],
    units: { 'smolotchi-core.service': H('e') },
    minToolVersion: '0.1.0',
  };
}

/** Parse, and say how it ended: 'ok', 'integrity' or (a bug) anything else. */
function outcome(bytes: Uint8Array): 'ok' | 'integrity' {
  try {
    parseManifest(bytes);
    return 'ok';
  } catch (err) {
    if (err instanceof IntegrityError && !err.message.includes('\n')) return 'integrity';
    throw err;
  }
}

const withFiles = (files: unknown[], units: unknown = {}) => canonicalBytes({ ...sample(), files, units });

describe('canonical JSON', () => {
  it('sorts keys at every depth, no whitespace, integers only', () => {
    expect(canonicalJson({ b: 1, a: [{ d: null, c: 'x' }], 'é': true })).toBe('{"a":[{"c":"x","d":null}],"b":1,"é":true}');
    expect(() => canonicalJson({ a: 1.5 })).toThrow(TypeError);
    expect(() => canonicalJson({ a: 2 ** 60 })).toThrow(TypeError);
  });
});

describe('parseManifest', () => {
  it('round-trips a manifest and refuses the same content in any other spelling', () => {
    const bytes = encodeManifest(sample());
    expect(parseManifest(bytes)).toEqual(sample());
    const text = bytes.toString();
    const variants = [
      JSON.stringify(JSON.parse(text), null, 1),
      `\uFEFF${text}`,
      `${text}\n`,
      text.replace('"name":"smolotchi"', '"name":"smolotchi","name":"smolotchi"'),
      text.replace('"smolotchi"', '"\\u0073molotchi"'),
      text.replace('"size":1234', '"size":1234.0'),
      text.replace('"size":1234', '"size":1.234e3'),
    ];
    for (const v of variants) expect(outcome(Buffer.from(v)), v.slice(0, 60)).toBe('integrity');
  });

  it.each([
    ['absolute path', [file('/etc/passwd')]],
    ['.. segment', [file('../x')]],
    ['.. in the middle', [{ path: 'a', type: 'dir' }, file('a/../../x')]],
    ['. segment', [file('./x')]],
    ['empty segment', [{ path: 'a', type: 'dir' }, file('a//x')]],
    ['trailing slash', [file('x/')]],
    ['empty path', [file('')]],
    ['newline', [file('x\ny')]],
    ['escape character', [file('x\u001b[2Jy')]],
    ['C1 control', [file('x\u0085y')]],
    ['backslash', [file('a\\..\\x')]],
    ['lone surrogate', [file('x\uD800')]],
    ['unsorted', [file('b'), file('a')]],
    ['duplicate', [file('a'), file('a')]],
    ['file under a file', [file('a'), file('a/b')]],
    ['file under a symlink', [{ path: 'a', type: 'symlink', target: '.' }, file('a/b')]],
    ['parent not listed', [file('a/b')]],
    ['absolute symlink', [{ path: 'l', type: 'symlink', target: '/etc' }]],
    ['climbing symlink', [{ path: 'l', type: 'symlink', target: '../x' }]],
    ['.. after a name in a symlink', [{ path: 'a', type: 'dir' }, { path: 'a/l', type: 'symlink', target: 'b/../../x' }]],
    ['setuid mode', [file('x', H('a'), 0o4755)]],
    ['world-writable mode', [file('x', H('a'), 0o666)]],
    ['uppercase hash', [file('x', H('A'))]],
    ['negative size', [file('x', H('a'), 0o644, -1)]],
    ['unknown type', [{ path: 'x', type: 'fifo' }]],
    ['unknown field', [{ ...file('x'), owner: 'root' }]],
    ['too deep', [...Array.from({ length: 65 }, (_, i) => ({ path: Array(i + 1).fill('d').join('/'), type: 'dir' }))]],
  ])('refuses %s', (_name, files) => {
    expect(outcome(withFiles(files))).toBe('integrity');
  });

  it.each([
    ['a unit the file list lacks', { 'smolotchi-web.service': H('e') }],
    ['a unit with another hash', { 'smolotchi-core.service': H('f') }],
    ['no units although packaging/systemd has files', {}],
    ['a unit path climbing out', { '../../etc/x.service': H('e') }],
  ])('refuses units naming %s', (_name, units) => {
    expect(outcome(canonicalBytes({ ...sample(), units }))).toBe('integrity');
  });

  it.each([
    ['version with v', { version: 'v1.2.3' }],
    ['version path', { version: '../1.2.3' }],
    ['short commit', { commit: 'abc' }],
    ['schema 2', { schemaVersion: 2 }],
    ['another name', { name: 'evil' }],
    ['archive size as a string', { archive: { sha256: H('d'), size: '1' } }],
    ['extra top-level field', { extra: 1 }],
  ])('refuses %s', (_name, patch) => {
    expect(outcome(canonicalBytes({ ...sample(), ...patch }))).toBe('integrity');
  });

  it('property: arbitrary bytes never crash the parser (IntegrityError or nothing)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (b) => void outcome(b)), { numRuns: 3000 });
  });

  it('property: arbitrary canonical JSON values never crash the parser', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => void outcome(Buffer.from(safeCanonical(v)))), { numRuns: 3000 });
  });

  it('property: a manifest with a generated path is accepted only when the path is safe', () => {
    const segment = fc.oneof(
      fc.constantFrom('..', '.', '', 'a', 'b.py', '\u0000', '\n', '\\', '\u001b', '\u009b', '\uD800', 'ü'),
      fc.string({ maxLength: 6 }),
    );
    const rawPath = fc.oneof(fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join('/')), fc.string(), fc.string().map((s) => `/${s}`));
    fc.assert(
      fc.property(rawPath, (p) => {
        if (outcome(withFiles([file(p)])) === 'integrity') return true;
        // Accepted: a single top-level file name, so it must be a plain, safe name.
        return !p.startsWith('/') && !p.includes('/') && p !== '.' && p !== '..' && p !== '' && !/[\u0000-\u001f\u007f-\u009f\\]/.test(p);
      }),
      { numRuns: 5000 },
    );
  });

  it('property: any edit to an entry of a valid manifest is either refused or still parses to a safe tree', () => {
    const base = sample();
    const edit = fc.record({
      index: fc.nat({ max: base.files.length - 1 }),
      field: fc.constantFrom('path', 'type', 'sha256', 'size', 'mode', 'target'),
      value: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.constantFrom('../x', '/x', 'a/../b', 'x\u0000', 'dir', 'symlink', 420, 493, 511)),
    });
    fc.assert(
      fc.property(edit, ({ index, field, value }) => {
        const files = base.files.map((f) => ({ ...f })) as Record<string, unknown>[];
        files[index]![field] = value;
        const bytes = (() => {
          try {
            return canonicalBytes({ ...base, files });
          } catch {
            return Buffer.from('x');
          }
        })();
        if (outcome(bytes) === 'integrity') return true;
        return parseManifest(bytes).files.every((f) => !f.path.startsWith('/') && !f.path.split('/').includes('..'));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('parseSignatureFile', () => {
  it('property: arbitrary bytes and JSON never crash it', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => expectOnlyIntegrity(() => parseSignatureFile(b))), { numRuns: 2000 });
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 3 }), (v) => expectOnlyIntegrity(() => parseSignatureFile(Buffer.from(safeCanonical(v))))), { numRuns: 2000 });
  });

  it('refuses non-canonical base64 of the right length', () => {
    const sig = Buffer.alloc(64, 7).toString('base64');
    const loose = sig.slice(0, 85) + 'x==';
    expect(() => parseSignatureFile(canonicalBytes({ algorithm: 'ed25519', keyId: 'a'.repeat(16), schemaVersion: 1, signature: loose }))).toThrow(IntegrityError);
  });
});

describe('splitBytecode', () => {
  it('keeps __pycache__ files that belong to a source, flags everything else', () => {
    const entries: TreeEntry[] = [
      file('__pycache__/top.cpython-311.pyc'),
      { path: '__pycache__', type: 'dir' },
      file('top.py'),
      { path: 'pkg', type: 'dir' },
      { path: 'pkg/__pycache__', type: 'dir' },
      file('pkg/__pycache__/mod.cpython-311.opt-1.pyc'),
      file('pkg/__pycache__/ghost.cpython-311.pyc'),
      { path: 'pkg/__pycache__/sub', type: 'dir' },
      { path: 'pkg/__pycache__/x.cpython-311.pyc', type: 'symlink', target: '../mod.py' },
      file('pkg/mod.py'),
    ];
    const { tree, orphans } = splitBytecode(entries);
    expect(tree.map((e) => e.path)).toEqual(['top.py', 'pkg', 'pkg/mod.py']);
    expect(orphans).toEqual(['pkg/__pycache__/ghost.cpython-311.pyc', 'pkg/__pycache__/sub', 'pkg/__pycache__/x.cpython-311.pyc']);
  });
});

function expectOnlyIntegrity(f: () => unknown): void {
  try {
    f();
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
  }
}

/** fast-check's JSON values include floats and -0; the canonical encoder refuses those, so spell them as JSON does. */
function safeCanonical(v: unknown): string {
  try {
    return canonicalJson(v);
  } catch {
    return JSON.stringify(v);
  }
}
