import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { latestStable, parseVersion, tryParseVersion } from '../../src/core/version.js';

describe('parseVersion', () => {
  it.each([
    ['1.2.3', '1.2.3'],
    ['v1.2.3', '1.2.3'],
    ['0.0.0', '0.0.0'],
    ['1.2.3-rc.1', '1.2.3-rc.1'],
    ['1.2.3-rc.1+build.5', '1.2.3-rc.1+build.5'],
    ['10.20.30+meta-data', '10.20.30+meta-data'],
  ])('accepts %s', (input, canonical) => {
    expect(parseVersion(input)).toBe(canonical);
  });

  it.each(['', '1', '1.0', 'v', 'vv1.0.0', '01.2.3', '1.02.3', '1.2.3-', '1.2.3+', '1.2.3-01', ' 1.2.3', '1.2.3 ', '../1.2.3', '1.2.3/..', '-1.2.3', '--help', '1.2.3;rm', '1.2.3\n', 'latest', 'a'.repeat(65), `1.2.3-${'x'.repeat(60)}`])(
    'refuses %j with exit 2',
    (input) => {
      expect(() => parseVersion(input)).toThrow(expect.objectContaining({ exitCode: 2 }));
    },
  );

  it('property: whatever it accepts is a safe single path segment of at most 64 characters', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'grapheme-ascii' }), fc.constantFrom('1.2.3', 'v0.1.0-rc.1', '1.2.3+x')), (input) => {
        const v = tryParseVersion(input);
        if (v === null) return true;
        return v.length <= 64 && /^[0-9A-Za-z.+-]+$/.test(v) && !v.includes('..') && !v.startsWith('-') && !v.includes('/');
      }),
      { numRuns: 5000 },
    );
  });

  it('property: generated valid versions round-trip, with or without v', () => {
    const num = fc.nat({ max: 99999 }).map(String);
    fc.assert(
      fc.property(num, num, num, fc.option(fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/)), fc.boolean(), (a, b, c, pre, withV) => {
        const base = `${a}.${b}.${c}${pre ? `-${pre}` : ''}`;
        return parseVersion(withV ? `v${base}` : base) === base;
      }),
      { numRuns: 3000 },
    );
  });
});

describe('latestStable', () => {
  it('is the highest non-prerelease by semver order, not string order', () => {
    expect(latestStable(['1.9.0', '1.10.0', '2.0.0-rc.1', '1.10.0-beta'])).toBe('1.10.0');
    expect(latestStable(['2.0.0-rc.1'])).toBeNull();
  });
});
