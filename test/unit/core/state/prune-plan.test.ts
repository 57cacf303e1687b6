import { describe, expect, it } from 'vitest';
import { planPrune } from '../../../../src/core/state/prune-plan.js';
import type { ReleaseOnDisk } from '../../../../src/core/state/releases.js';

const rel = (version: string, minute: number, complete = true): ReleaseOnDisk => ({
  version,
  dir: `/r/${version}`,
  stamp: complete ? ({ completedAt: `2026-01-01T00:${String(minute).padStart(2, '0')}:00.000Z` } as ReleaseOnDisk['stamp']) : null,
});

describe('planPrune', () => {
  const releases = [rel('1.0.0', 1), rel('1.1.0', 2), rel('1.2.0', 3), rel('1.3.0', 4), rel('1.4.0', 5)];

  it('keeps the newest N by install time', () => {
    const p = planPrune(releases, { keep: 2, current: '1.4.0', lastGood: '1.4.0', rollbackTarget: '1.3.0', bad: new Set() });
    expect(p.keep.sort()).toEqual(['1.3.0', '1.4.0']);
    expect(p.remove.sort()).toEqual(['1.0.0', '1.1.0', '1.2.0']);
  });

  it('never removes current, last good or the rollback target, whatever N says', () => {
    const p = planPrune(releases, { keep: 1, current: '1.0.0', lastGood: '1.1.0', rollbackTarget: '1.2.0', bad: new Set() });
    expect(p.keep.sort()).toEqual(['1.0.0', '1.1.0', '1.2.0']);
    expect(p.protectedReasons).toEqual({ '1.0.0': 'current', '1.1.0': 'last good', '1.2.0': 'rollback target' });
  });

  it('bad releases go first', () => {
    const p = planPrune(releases, { keep: 2, current: '1.3.0', lastGood: '1.3.0', rollbackTarget: null, bad: new Set(['1.4.0']) });
    expect(p.keep.sort()).toEqual(['1.2.0', '1.3.0']);
    expect(p.remove).toContain('1.4.0');
  });

  it('incomplete folders are not its business (recovery removes them)', () => {
    const p = planPrune([...releases, rel('2.0.0', 9, false)], { keep: 1, current: '1.4.0', lastGood: null, rollbackTarget: null, bad: new Set() });
    expect([...p.keep, ...p.remove]).not.toContain('2.0.0');
  });
});
