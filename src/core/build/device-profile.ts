/**
 * Which requirement set a device wants (`pi` adds requirements/pi_zero.txt), from setting or board.
 * Never reads the board outside the root prefix, so a sandbox decides its own profile.
 */

import { readFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Which of the app's requirement sets a device wants: `pi` adds requirements/pi_zero.txt (GPIO,
 * e-paper driver), `generic` does not. `auto` (the default) is `pi` on ARM Raspberry Pi hardware.
 */
export type ProfileSetting = 'auto' | 'pi' | 'generic';
export type Profile = 'pi' | 'generic';

export const PI_REQUIREMENTS = 'requirements/pi_zero.txt';

// Where the kernel names the board; both are read under the root prefix (a sandbox can fake one).
const MODEL_FILES = ['proc/device-tree/model', 'sys/firmware/devicetree/base/model'];
// Node's names for armv6/armv7 (arm) and aarch64 (arm64): the Pi's architectures.
const PI_ARCHES = new Set(['arm', 'arm64']);

/** The board's model string ("Raspberry Pi Zero 2 W Rev 1.0"), or null when the kernel names none. */
export async function deviceModel(root: string): Promise<string | null> {
  for (const rel of MODEL_FILES) {
    const text = await readFile(path.join(root, rel), 'utf8').catch(() => null);
    // The device tree string ends in a NUL byte.
    if (text !== null) return text.replace(/\0+$/, '').trim();
  }
  return null;
}

export async function resolveProfile(setting: ProfileSetting, root: string, arch: string = process.arch): Promise<{ profile: Profile; why: string }> {
  if (setting !== 'auto') return { profile: setting, why: `SMOLOTCHI_RELEASE_PROFILE=${setting}` };
  const model = await deviceModel(root);
  if (model === null) return { profile: 'generic', why: 'no device-tree model (not a Raspberry Pi)' };
  if (!/raspberry pi/i.test(model)) return { profile: 'generic', why: `device model ${JSON.stringify(model)} is not a Raspberry Pi` };
  if (!PI_ARCHES.has(arch)) return { profile: 'generic', why: `${model} but running on ${arch}` };
  return { profile: 'pi', why: `device model ${JSON.stringify(model)}` };
}
