import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArchivePolicy, DEFAULT_LIMITS, type ArchiveEntryInfo, type ExtractLimits } from '../../../src/adapters/archive-policy.js';
import { IntegrityError } from '../../../src/core/errors.js';

const T = 'smolotchi-1.0.0';
const policy = (limits?: Partial<ExtractLimits>, topLevel: string | null = T) => new ArchivePolicy({ topLevel, limits });
const file = (p: string, extra: Partial<ArchiveEntryInfo> = {}): ArchiveEntryInfo => ({ path: p, type: 'File', mode: 0o644, size: 1, ...extra });
const dir = (p: string, mode = 0o755): ArchiveEntryInfo => ({ path: p, type: 'Directory', mode, size: 0 });
const sym = (p: string, linkpath: string): ArchiveEntryInfo => ({ path: p, type: 'SymbolicLink', linkpath, mode: 0o777, size: 0 });
const hard = (p: string, linkpath: string): ArchiveEntryInfo => ({ path: p, type: 'Link', linkpath, mode: 0o644, size: 0 });

/** Feed entries in order; the last one must be refused with exit 4 and a reason matching `why`. */
function expectRefusal(entries: ArchiveEntryInfo[], why: RegExp, limits?: Partial<ExtractLimits>, topLevel: string | null = T): void {
  const p = policy(limits, topLevel);
  for (const e of entries.slice(0, -1)) p.check(e);
  let caught: unknown;
  try {
    p.check(entries[entries.length - 1] as ArchiveEntryInfo);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(IntegrityError);
  const err = caught as IntegrityError;
  expect(err.exitCode).toBe(4);
  expect(err.message).toMatch(why);
  expect(err.message).toMatch(/^archive entry ".*" refused: /);
  expect(err.message).not.toMatch(/[\n\r]/);
}

describe('ArchivePolicy: accepted entries', () => {
  it('strips the top-level folder and normalises ./ and //', () => {
    const p = policy();
    expect(p.check(dir(`${T}/`))).toBeNull();
    expect(p.check(dir(`./${T}/smolotchi/`))).toBe('smolotchi');
    expect(p.check(file(`${T}//smolotchi/./__init__.py`))).toBe('smolotchi/__init__.py');
    expect(p.check(file(`${T}/a..b...c`))).toBe('a..b...c');
  });

  it('ignores pax and GNU metadata headers without counting them', () => {
    const p = policy({ maxEntries: 1 });
    for (const type of ['GlobalExtendedHeader', 'ExtendedHeader', 'NextFileHasLongPath', 'NextFileHasLongLinkpath', 'OldExtendedHeader']) {
      expect(p.check({ path: 'pax_global_header', type, size: 52 })).toBeNull();
    }
    expect(p.check(file(`${T}/x`))).toBe('x');
  });

  it('works without a top-level folder (git archive)', () => {
    const p = policy({}, null);
    expect(p.check(dir('./'))).toBeNull();
    expect(p.check(file('README.md'))).toBe('README.md');
    expect(p.check(file('smolotchi/cli.py'))).toBe('smolotchi/cli.py');
  });

  it('reduces modes to 0755/0644 and keeps only the executable bit', () => {
    const p = policy();
    expect(p.checkEntry(file(`${T}/run`, { mode: 0o700 }))?.mode).toBe(0o755);
    expect(p.checkEntry(file(`${T}/x`, { mode: 0o666 }))?.mode).toBe(0o644);
    expect(p.checkEntry(file(`${T}/y`, { mode: undefined }))?.mode).toBe(0o644);
    expect(p.checkEntry(dir(`${T}/d`, 0o700))?.mode).toBe(0o755);
  });

  it('accepts links that stay inside the tree', () => {
    const p = policy();
    p.check(file(`${T}/a/b/target.py`));
    expect(p.checkEntry(sym(`${T}/a/b/l1`, 'target.py'))?.linkTarget).toBe('target.py');
    expect(p.checkEntry(sym(`${T}/a/b/l2`, '../../a/./b//target.py'))?.linkTarget).toBe('../../a/b/target.py');
    expect(p.checkEntry(sym(`${T}/l3`, '.'))?.linkTarget).toBe('.');
    expect(p.checkEntry(hard(`${T}/h`, `${T}/a/b/target.py`))?.linkTarget).toBe('a/b/target.py');
  });

  it('allows an explicit directory after files made it implicitly', () => {
    const p = policy();
    p.check(file(`${T}/pkg/mod.py`));
    expect(p.check(dir(`${T}/pkg/`))).toBe('pkg');
  });

  it('has sensible defaults', () => {
    expect(DEFAULT_LIMITS).toEqual({ maxEntries: 100_000, maxTotalBytes: 2 * 1024 ** 3, maxPathLength: 4096, maxDepth: 64, maxFileBytes: 1024 ** 3 });
    expect(policy({ maxDepth: 3 }).limits).toMatchObject({ maxDepth: 3, maxEntries: 100_000 });
  });
});

describe('ArchivePolicy: refusals (each hostile input named in the message)', () => {
  const cases: [string, ArchiveEntryInfo[], RegExp, Partial<ExtractLimits>?, (string | null)?][] = [
    ['absolute path', [file('/etc/passwd')], /absolute path/],
    ['absolute path, no top level', [file('/etc/passwd')], /absolute path/, {}, null],
    ['.. at start', [file('../x')], /'\.\.' in path/],
    ['.. in the middle', [file(`${T}/a/../../x`)], /'\.\.' in path/],
    ['.. that stays inside lexically is still refused', [file(`${T}/a/../b`)], /'\.\.' in path/],
    ['another release via ..', [file(`${T}/../1.1.0/x`)], /'\.\.' in path/],
    ['second top-level folder', [file(`${T}/a`), file('smolotchi-1.1.0/x')], /outside the top-level folder smolotchi-1\.0\.0\//],
    ['prefix-alike top level', [file(`${T}x/a`)], /outside the top-level folder/],
    ['empty name', [file('')], /empty path/],
    ['newline', [file(`${T}/a\nb`)], /control character/],
    ['carriage return', [file(`${T}/a\rb`)], /control character/],
    ['DEL', [file(`${T}/a\u007fb`)], /control character/],
    ['NUL', [file(`${T}/a\u0000b`)], /control character/],
    ['C1 control', [file(`${T}/a\u009bb`)], /control character/],
    ['right-to-left override', [file(`${T}/evil\u202egnp.py`)], /bidi or zero-width character in path/],
    ['right-to-left isolate', [file(`${T}/a\u2067b`)], /bidi or zero-width character in path/],
    ['right-to-left mark', [file(`${T}/a\u200fb`)], /bidi or zero-width character in path/],
    ['zero-width space', [file(`${T}/setup\u200b.py`)], /bidi or zero-width character in path/],
    ['zero-width joiner', [file(`${T}/a\u200db`)], /bidi or zero-width character in path/],
    ['byte order mark', [file(`${T}/\ufeffsmolotchi/cli.py`)], /bidi or zero-width character in path/],
    ['soft hyphen', [file(`${T}/cl\u00adi.py`)], /bidi or zero-width character in path/],
    ['backslash', [file(`${T}\\..\\x`)], /backslash/],
    ['symlink absolute', [sym(`${T}/l`, '/etc')], /symlink to absolute path/],
    ['symlink climbing', [sym(`${T}/a/l`, '../../x')], /climbs out/],
    ['symlink to the parent of the tree', [sym(`${T}/l`, '..')], /climbs out/],
    ['symlink .. after a name', [sym(`${T}/a/l`, 'b/../../x')], /'\.\.' after a name/],
    ['symlink without target', [sym(`${T}/l`, '')], /without a target/],
    ['symlink target with newline', [sym(`${T}/l`, 'a\nb')], /control character in symlink target/],
    ['symlink target with a bidi override', [sym(`${T}/l`, 'a\u202eb')], /bidi or zero-width character in symlink target/],
    ['write through symlink', [sym(`${T}/l`, 'sub'), file(`${T}/l/x`)], /writes through the symlink "l"/],
    ['write deep through symlink', [sym(`${T}/l`, 'sub'), file(`${T}/l/a/b/c`)], /writes through the symlink "l"/],
    ['file under a file', [file(`${T}/f`), file(`${T}/f/x`)], /parent "f" is a file/],
    ['hardlink outside', [hard(`${T}/h`, '../etc/passwd')], /'\.\.' in hardlink target/],
    ['hardlink absolute', [hard(`${T}/h`, '/etc/shadow')], /absolute hardlink target/],
    ['hardlink to another release', [hard(`${T}/h`, 'smolotchi-1.1.0/x')], /hardlink target outside the top-level/],
    ['hardlink to symlink', [sym(`${T}/s`, 'x'), hard(`${T}/h`, `${T}/s`)], /hardlink to a symlink/],
    ['hardlink to hardlink', [file(`${T}/f`), hard(`${T}/h1`, `${T}/f`), hard(`${T}/h2`, `${T}/h1`)], /hardlink to a hardlink/],
    ['hardlink to directory', [dir(`${T}/d`), hard(`${T}/h`, `${T}/d`)], /hardlink to a directory/],
    ['hardlink to the root', [hard(`${T}/h`, `${T}/`)], /hardlink to a directory/],
    ['hardlink to missing', [hard(`${T}/h`, `${T}/missing`)], /missing/],
    ['hardlink to itself', [hard(`${T}/h`, `${T}/h`)], /missing/],
    ['character device', [{ path: `${T}/c`, type: 'CharacterDevice' }], /character device/],
    ['block device', [{ path: `${T}/b`, type: 'BlockDevice' }], /block device/],
    ['FIFO', [{ path: `${T}/p`, type: 'FIFO' }], /FIFO/],
    ['unknown type', [{ path: `${T}/s`, type: 'SparseFile' }], /unsupported entry type "SparseFile"/],
    ['unsupported', [{ path: `${T}/s`, type: 'Unsupported' }], /unsupported entry type/],
    ['setuid', [file(`${T}/s`, { mode: 0o4755 })], /setuid/],
    ['setgid', [file(`${T}/s`, { mode: 0o2755 })], /setgid/],
    ['sticky', [dir(`${T}/t`, 0o1777)], /sticky/],
    ['duplicate', [file(`${T}/a`), file(`./${T}/a`)], /duplicate entry/],
    ['duplicate directory', [dir(`${T}/d/`), dir(`${T}/d`)], /duplicate entry/],
    ['file replacing a directory', [file(`${T}/d/x`), file(`${T}/d`)], /replaces a directory/],
    ['symlink replacing a directory', [file(`${T}/d/x`), sym(`${T}/d`, '.')], /replaces a directory/],
    ['top folder as a symlink', [sym(T, '../other')], /names the release root/],
    ['path too long', [file(`${T}/${'a'.repeat(100)}`)], /path too long/, { maxPathLength: 100 }],
    ['too deep', [file(`${T}/a/b/c/d`)], /too deep/, { maxDepth: 3 }],
    ['too many entries', [file(`${T}/a`), file(`${T}/b`), file(`${T}/c`)], /too many entries/, { maxEntries: 2 }],
    ['file too large', [file(`${T}/a`, { size: 11 })], /file too large/, { maxFileBytes: 10 }],
    ['total too large', [file(`${T}/a`, { size: 6 }), file(`${T}/b`, { size: 6 })], /total size over the limit/, { maxTotalBytes: 10 }],
    ['negative size', [file(`${T}/a`, { size: -1 })], /invalid size/],
    ['fractional size', [file(`${T}/a`, { size: 1.5 })], /invalid size/],
    ['directory carrying data', [{ ...dir(`${T}/d`), size: 10 }], /carries 10 bytes/],
    ['symlink carrying data', [{ ...sym(`${T}/l`, 'x'), size: 10 }], /carries 10 bytes/],
  ];
  it.each(cases)('%s', (_name, entries, why, limits, topLevel) => expectRefusal(entries, why, limits, topLevel === undefined ? T : topLevel));

  it('accepts exactly at the limits', () => {
    const p = policy({ maxPathLength: 20, maxDepth: 2, maxEntries: 3, maxFileBytes: 5, maxTotalBytes: 10 });
    expect(p.check(file(`${T}/a/${'b'.repeat(20 - T.length - 3)}`, { size: 5 }))).toBeTruthy();
    expect(p.check(file(`${T}/c`, { size: 5 }))).toBe('c');
    expect(p.check(dir(`${T}/d`))).toBe('d');
  });
});

// ---- property tests -------------------------------------------------------------------------

const TYPES = ['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link', 'CharacterDevice', 'BlockDevice', 'FIFO',
  'GlobalExtendedHeader', 'ExtendedHeader', 'NextFileHasLongPath', 'GNUDumpDir', 'SparseFile', 'Unsupported', 'Z', ''];

const segment = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('a', 'b', 'c', 'pkg', T, 'smolotchi-1.1.0', 'x.py') },
  { weight: 3, arbitrary: fc.constantFrom('.', '..', '', '...', '..a', 'a..', ' ', '~', 'C:', '\\', '..\\..', '%2e%2e') },
  { weight: 2, arbitrary: fc.constantFrom('\n', '\r', '\u0000', '\u007f', '\u001b[0m', '\u0085', '\u009b', '\t') },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) },
);

const archivePath = fc
  .tuple(
    fc.constantFrom('', '', '', '/', './', '//'),
    fc.boolean(),
    fc.array(segment, { maxLength: 7 }),
    fc.constantFrom('', '', '/'),
  )
  .map(([lead, underTop, segs, trail]) => lead + [...(underTop ? [T] : []), ...segs].join('/') + trail);

// Mostly well-formed entries with a hostile twist here and there, so that both sides of the gate run.
const safeSegment = fc.constantFrom('a', 'b', 'c', 'pkg', 'x.py');
const plausiblePath = fc
  .tuple(fc.constantFrom('', './'), fc.array(safeSegment, { minLength: 1, maxLength: 4 }), fc.constantFrom('', '/'))
  .map(([lead, segs, trail]) => `${lead}${T}/${segs.join('/')}${trail}`);
const plausibleTarget = fc.oneof(plausiblePath, fc.array(fc.constantFrom('..', 'a', 'b', '.', 'x.py'), { minLength: 1, maxLength: 4 }).map((s) => s.join('/')));
const plausibleEntry: fc.Arbitrary<ArchiveEntryInfo> = fc.record({
  path: fc.oneof({ weight: 5, arbitrary: plausiblePath }, { weight: 1, arbitrary: archivePath }),
  type: fc.constantFrom('File', 'File', 'Directory', 'SymbolicLink', 'Link', 'GlobalExtendedHeader'),
  linkpath: fc.option(plausibleTarget, { nil: undefined }),
  mode: fc.constantFrom(0o644, 0o755, 0o600, 0o4755),
  size: fc.constantFrom(0, 0, 1, 100),
});

const wildEntry: fc.Arbitrary<ArchiveEntryInfo> = fc.record({
  path: archivePath,
  type: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('File', 'Directory', 'SymbolicLink', 'Link') }, { weight: 1, arbitrary: fc.constantFrom(...TYPES) }),
  linkpath: fc.option(archivePath, { nil: undefined }),
  mode: fc.option(fc.oneof(fc.constantFrom(0o644, 0o755, 0o777, 0o4755, 0o2755, 0o1777), fc.integer({ min: 0, max: 0o177777 })), { nil: undefined }),
  size: fc.option(fc.oneof(fc.nat({ max: 4096 }), fc.constantFrom(-1, 0.5, Number.NaN, Number.MAX_SAFE_INTEGER, 2 ** 60)), { nil: undefined }),
});

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Lexically resolve `target` from the directory of `linkPath`; null when it climbs above the root. */
function resolveInside(linkPath: string, target: string): string | null {
  const stack = linkPath.split('/').slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '..') {
      if (stack.length === 0) return null;
      stack.pop();
    } else if (part !== '.' && part !== '') stack.push(part);
  }
  return stack.join('/');
}

describe('ArchivePolicy: properties', () => {
  it('never throws anything but IntegrityError, and never accepts an unsafe path', () => {
    const seen = { accepted: 0, refused: 0 };
    fc.assert(
      fc.property(fc.constantFrom<string | null>(T, null), fc.array(fc.oneof({ weight: 3, arbitrary: plausibleEntry }, { weight: 1, arbitrary: wildEntry }), { minLength: 1, maxLength: 25 }), (topLevel, entries) => {
        const p = new ArchivePolicy({ topLevel, limits: { maxDepth: 6, maxEntries: 20, maxPathLength: 200 } });
        const accepted = new Map<string, string>();
        for (const e of entries) {
          let result;
          try {
            result = p.checkEntry(e);
          } catch (err) {
            expect(err).toBeInstanceOf(IntegrityError);
            expect((err as IntegrityError).exitCode).toBe(4);
            expect((err as Error).message).not.toMatch(/[\n\r]/);
            seen.refused++;
            continue;
          }
          if (result === null) continue;
          const rel = result.path;
          // Never absolute, never '..', never control characters or backslashes, always normalised.
          expect(rel.length).toBeGreaterThan(0);
          expect(rel.startsWith('/')).toBe(false);
          expect(rel.split('/')).not.toContain('..');
          expect(e.path.split('/')).not.toContain('..');
          expect(CONTROL.test(rel) || CONTROL.test(e.path)).toBe(false);
          expect(rel.includes('\\')).toBe(false);
          expect(path.posix.normalize(rel)).toBe(rel);
          // Joined to a root it stays strictly inside it.
          expect(path.resolve('/root/release', rel).startsWith('/root/release/')).toBe(true);
          expect(accepted.has(rel) && result.kind !== 'directory').toBe(false);
          // No accepted entry lives under an accepted symlink or file.
          const parts = rel.split('/');
          for (let i = 1; i < parts.length; i++) {
            const kind = accepted.get(parts.slice(0, i).join('/'));
            expect(kind === undefined || kind === 'directory').toBe(true);
          }
          if (result.kind === 'symlink') {
            const target = result.linkTarget as string;
            expect(target.startsWith('/')).toBe(false);
            expect(CONTROL.test(target)).toBe(false);
            expect(resolveInside(rel, target)).not.toBeNull();
            // All '..' steps come first: none after a name that could itself be a symlink.
            const steps = target.split('/');
            expect(steps.slice(steps.findIndex((s) => s !== '..')).includes('..') && steps.some((s) => s !== '..')).toBe(false);
          }
          if (result.kind === 'hardlink') expect(accepted.get(result.linkTarget as string)).toBe('file');
          if (result.kind === 'file') expect([0o644, 0o755]).toContain(result.mode);
          expect((e.mode ?? 0) & 0o7000).toBe(0);
          accepted.set(rel, result.kind);
          seen.accepted++;
        }
      }),
      { numRuns: 3000 },
    );
    // Not vacuous: both sides of the gate were exercised thousands of times.
    expect(seen.accepted).toBeGreaterThan(1000);
    expect(seen.refused).toBeGreaterThan(1000);
  });

  it('refuses every path with a .. segment, absolute, or with a control character', () => {
    const hostile = fc.oneof(
      archivePath.map((p) => `${T}/${p}/../x`),
      archivePath.map((p) => `/${p}`),
      fc.tuple(archivePath, fc.integer({ min: 0, max: 0x1f })).map(([p, c]) => `${T}/${p}${String.fromCharCode(c)}x`),
      fc.tuple(archivePath, fc.integer({ min: 0x7f, max: 0x9f })).map(([p, c]) => `${T}/x${String.fromCharCode(c)}${p}`),
    );
    fc.assert(
      fc.property(hostile, fc.constantFrom('File', 'Directory', 'SymbolicLink', 'Link'), (p, type) => {
        expect(() => new ArchivePolicy({ topLevel: T }).check({ path: p, type, linkpath: 'x', size: 0 })).toThrow(IntegrityError);
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses every symlink whose target leaves the tree', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', 'b', 'c'), { minLength: 1, maxLength: 5 }), fc.array(fc.constantFrom('a', '..', '.', ''), { minLength: 1, maxLength: 8 }), (linkSegs, targetSegs) => {
        const link = linkSegs.join('/');
        const target = targetSegs.join('/');
        let ok: boolean;
        try {
          new ArchivePolicy({ topLevel: null }).check(sym(link, target));
          ok = true;
        } catch (err) {
          expect(err).toBeInstanceOf(IntegrityError);
          ok = false;
        }
        if (ok) expect(resolveInside(link, target)).not.toBeNull();
        if (resolveInside(link, target) === null) expect(ok).toBe(false);
      }),
      { numRuns: 3000 },
    );
  });
});
