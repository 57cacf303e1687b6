import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import semver from 'semver';
import { compareVersions, isPrerelease, latestStable, parseVersion, tryParseVersion } from '../../../src/core/version.js';

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

describe('compareVersions', () => {
  it('orders by semver precedence: numbers by value, prereleases below their release, build metadata ignored', () => {
    const sorted = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.2.0', '1.10.0', '2.0.0'];
    expect([...sorted].reverse().sort(compareVersions)).toEqual(sorted);
    expect(compareVersions('1.0.0+a', '1.0.0+b')).toBe(0);
    expect(compareVersions('99999999999999999999.0.0', '99999999999999999998.0.0')).toBe(1);
    expect(() => compareVersions('1.0', '1.0.0')).toThrow(TypeError);
  });

  it('property: agrees with the semver package on generated versions', () => {
    const num = fc.oneof(fc.nat({ max: 20 }), fc.nat()).map(String);
    const ident = fc.oneof(fc.nat({ max: 30 }).map(String), fc.stringMatching(/^[0-9A-Za-z-]{1,6}$/).filter((s) => !/^0\d/.test(s)));
    const version = fc
      .tuple(num, num, num, fc.option(fc.array(ident, { minLength: 1, maxLength: 4 })), fc.option(fc.stringMatching(/^[0-9a-z]{1,5}$/)))
      .map(([a, b, c, pre, build]) => `${a}.${b}.${c}${pre ? `-${pre.join('.')}` : ''}${build ? `+${build}` : ''}`);
    fc.assert(
      fc.property(version, version, (a, b) => {
        expect(compareVersions(a, b)).toBe(semver.compare(a, b));
        expect(isPrerelease(a)).toBe(semver.prerelease(a) !== null);
      }),
      { numRuns: 5000 },
    );
  });
});
