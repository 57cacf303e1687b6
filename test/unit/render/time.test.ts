import { describe, expect, it } from 'vitest';
import { localTime, when } from '../../../src/render/time.js';

describe('localTime', () => {
  it('names the zone of each instant, winter and summer alike, with one shared formatter', () => {
    for (const iso of ['2026-01-15T12:00:00Z', '2026-07-15T12:00:00Z', '2026-01-15T12:00:00Z']) {
      const zone = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(new Date(iso)).find((p) => p.type === 'timeZoneName')?.value ?? '';
      expect(localTime(iso).endsWith(zone)).toBe(true);
    }
  });

  it('leaves a string that is not a time as it is', () => {
    expect(localTime('not a time')).toBe('not a time');
    expect(when(null, Date.now())).toBe('-');
  });
});
