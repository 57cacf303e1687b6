/**
 * Times for people: local time with its zone plus how long ago (`... CET (3 min ago)`).
 * Never used for JSON, which keeps the ISO 8601 UTC strings untouched.
 */

// One formatter per process, made on first use: building one costs ~40 ms under load, per call.
let zoneFormat: Intl.DateTimeFormat | undefined;

function zoneName(d: Date): string {
  zoneFormat ??= new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' });
  const part = zoneFormat.formatToParts(d).find((p) => p.type === 'timeZoneName');
  return part?.value ?? '';
}

const pad = (n: number) => String(n).padStart(2, '0');

export function localTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${date} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${zoneName(d)}`.trimEnd();
}

export function relativeAge(iso: string, now: number): string {
  const s = Math.round((now - new Date(iso).getTime()) / 1000);
  if (Number.isNaN(s)) return '';
  if (s < 0) return 'in the future';
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.floor(h / 24)} days ago`;
}

/** "2026-12-02 08:49:11 CET (3 min ago)"; '-' for no time. */
export function when(iso: string | null | undefined, now: number): string {
  if (!iso) return '-';
  const age = relativeAge(iso, now);
  return age ? `${localTime(iso)} (${age})` : localTime(iso);
}
