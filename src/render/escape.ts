/**
 * Escapes C0, DEL and C1 control characters in text shown to a person, as `\x1b`.
 * Never lets release or history text drive root's terminal; JSON keeps the original characters.
 */

/**
 * Text from a release (its check's output, unit journals, pip) or from the history reaches root's
 * terminal. C0 controls (ESC, BEL, CR, backspace, ...), DEL and C1 controls (CSI U+009B among them)
 * could move the cursor, retitle the window, hide or rewrite lines: in human output they are shown
 * escaped, as `\x1b`. Newline and tab stay (human output is laid out with them); JSON output keeps
 * the original characters, which JSON.stringify encodes anyway.
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A copy of `value` with every string in it escaped (results are plain data: objects, arrays, scalars). */
export function escapeStrings<T>(value: T): T {
  if (typeof value === 'string') return escapeControl(value) as T;
  if (Array.isArray(value)) return value.map(escapeStrings) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, escapeStrings(v)])) as T;
  }
  return value;
}
