/**
 * The table of what a release's unit files may say: refused directives, value rules, capabilities.
 * Never lets a unit gain privilege: another user, root exec prefixes, capabilities, foreign units.
 */

import { SERVICE_USER } from '../../adapters/service-user.js';

/**
 * What a release's unit files may say. A release defines its units; the tool defines what they may
 * do as root's guests: the user they run as, the capabilities they hold, what systemd (as root)
 * opens, mounts, reads or starts on their behalf. Each refused directive says why in one line.
 * Sandboxing a release may loosen (it grants nothing the service user does not have anyway) is
 * listed in SANDBOX_KEYS and shown by `status`.
 */

// The one name of the service user, shared with the spawn that runs release code as it.
export { SERVICE_USER } from '../../adapters/service-user.js';

/** Directives refused whatever their value: each makes systemd, as root, grant or do something for the unit. */
export const REFUSED: Record<string, string> = {
  DynamicUser: 'the tool decides the user every unit runs as',
  SupplementaryGroups: 'extra groups grant access the service user does not have',
  PAMName: 'a PAM session runs its modules as root for the unit',
  SecureBits: 'secure bits such as keep-caps let the unit keep capabilities',
  PermissionsStartOnly: 'it runs ExecStartPre/ExecStartPost as root',
  RootDirectoryStartOnly: 'it runs ExecStartPre/ExecStartPost outside the unit root',
  RootDirectory: 'the unit would run from a file system the tool never checked',
  RootImage: 'the unit would run from an image the tool never checked',
  RootImageOptions: 'the unit would run from an image the tool never checked',
  RootHash: 'the unit would run from an image the tool never checked',
  RootVerity: 'the unit would run from an image the tool never checked',
  MountImages: 'root would mount images the tool never checked',
  ExtensionImages: 'root would mount images the tool never checked',
  ExtensionDirectories: 'root would overlay folders the tool never checked',
  BindPaths: 'root would bind-mount paths, replacing what the unit sees anywhere',
  BindReadOnlyPaths: 'root would bind-mount paths, replacing what the unit sees anywhere',
  NetworkNamespacePath: 'root would join the unit to another network namespace',
  IPCNamespacePath: 'root would join the unit to another IPC namespace',
  SELinuxContext: 'a security label can leave the confinement',
  AppArmorProfile: 'a security label can leave the confinement',
  SmackProcessLabel: 'a security label can leave the confinement',
  Delegate: 'it hands the unit a cgroup subtree of its own',
  KeyringMode: 'the kernel keyring setup is the tool\'s',
  ConfigurationDirectory: 'systemd would chown a folder under /etc to the service user',
  LoadCredential: 'root would read files for the unit',
  LoadCredentialEncrypted: 'root would read and decrypt files for the unit',
  ImportCredential: 'root would hand the unit credentials of the system',
  SetCredential: 'credentials are the operator\'s, not a release\'s',
  SetCredentialEncrypted: 'credentials are the operator\'s, not a release\'s',
  BPFProgram: 'root would attach a BPF program',
  IPIngressFilterPath: 'root would attach a BPF program',
  IPEgressFilterPath: 'root would attach a BPF program',
  TTYPath: 'root would open a terminal for the unit',
  UtmpIdentifier: 'root would write login records for the unit',
  LimitMEMLOCK: 'only root may raise this limit',
  LimitRTPRIO: 'only root may raise this limit',
  LimitRTTIME: 'only root may raise this limit',
  LimitNICE: 'only root may raise this limit',
  Alias: 'an alias is a second name outside smolotchi-*, and its link outlives the unit',
  DefaultInstance: 'instances are not part of the app',
  Also: 'it enables units the release does not own',
};

/** Directives with a value rule: the predicate says whether a value is allowed. */
export const VALUE_RULES: Record<string, { ok: (v: string) => boolean; why: string }> = {
  User: { ok: (v) => v === SERVICE_USER, why: `every unit runs as ${SERVICE_USER}` },
  Group: { ok: (v) => v === SERVICE_USER, why: `every unit runs as group ${SERVICE_USER}` },
  NoNewPrivileges: { ok: isTrue, why: 'set-user-ID programs must not raise the unit\'s privileges' },
  RestrictSUIDSGID: { ok: isTrue, why: 'the unit must not create set-user-ID files' },
  RestrictNamespaces: { ok: isTrue, why: 'new user namespaces hand out capabilities' },
  // /opt (the next release's venv is built there) stays read-only to every running unit.
  ProtectSystem: { ok: (v) => v === 'strict', why: 'the release tree and /etc stay read-only to running units' },
  EnvironmentFile: { ok: (v) => /^-?\/etc\/smolotchi\/env$/.test(v), why: 'root reads the file for the unit: only the operator\'s /etc/smolotchi/env' },
  StandardInput: { ok: isPlainStream, why: 'root would open a file or terminal for the unit' },
  StandardOutput: { ok: isPlainStream, why: 'root would open a file or terminal for the unit' },
  StandardError: { ok: isPlainStream, why: 'root would open a file or terminal for the unit' },
  Nice: { ok: (v) => Number(v) >= 0, why: 'a negative nice level is a privilege' },
  OOMScoreAdjust: { ok: (v) => Number(v) >= 0, why: 'protection from the OOM killer is a privilege' },
  CPUSchedulingPolicy: { ok: (v) => !/^(fifo|rr)$/i.test(v), why: 'real-time scheduling is a privilege' },
  IOSchedulingClass: { ok: (v) => !/^(1|realtime)$/i.test(v), why: 'real-time I/O is a privilege' },
  StateDirectory: { ok: (v) => v.split(/\s+/).every((d) => d === 'smolotchi'), why: 'systemd chowns it to the service user: only /var/lib/smolotchi' },
  RuntimeDirectory: { ok: (v) => v.split(/\s+/).every((d) => d === 'smolotchi' || d === 'smolotchi/locks'), why: 'systemd chowns it to the service user: only /run/smolotchi(/locks)' },
  CacheDirectory: { ok: (v) => v.split(/\s+/).every((d) => d === 'smolotchi'), why: 'systemd chowns it to the service user: only /var/cache/smolotchi' },
  LogsDirectory: { ok: (v) => v.split(/\s+/).every((d) => d === 'smolotchi'), why: 'systemd chowns it to the service user: only /var/log/smolotchi' },
  FailureAction: { ok: isNone, why: 'a release may not reboot or power off the device' },
  SuccessAction: { ok: isNone, why: 'a release may not reboot or power off the device' },
  StartLimitAction: { ok: isNone, why: 'a release may not reboot or power off the device' },
  JobTimeoutAction: { ok: isNone, why: 'a release may not reboot or power off the device' },
  Unit: { ok: (v) => /^smolotchi-[a-z0-9-]+\.service$/.test(v), why: 'a timer may only start a smolotchi-* service' },
};

/** [Unit]/[Install]/[Service] keys naming other units: those may be ours or a few harmless targets. */
export const DEPENDENCY_KEYS = new Set([
  'Wants', 'Requires', 'Requisite', 'BindsTo', 'PartOf', 'Upholds', 'Conflicts', 'OnFailure', 'OnSuccess',
  'PropagatesReloadTo', 'ReloadPropagatedFrom', 'PropagatesStopTo', 'StopPropagatedFrom', 'JoinsNamespaceOf',
  'WantedBy', 'RequiredBy', 'UpheldBy', 'Sockets',
]);
// Starting or stopping anything else (reboot.target, ssh.service) is the operator's business.
export const ALLOWED_DEPENDENCIES = new Set([
  'network.target', 'network-online.target', 'time-sync.target', 'multi-user.target', 'default.target',
  'timers.target', 'local-fs.target', 'remote-fs.target', 'sysinit.target', 'basic.target',
]);
export const OUR_UNIT = /^smolotchi-[a-z0-9]+(?:-[a-z0-9]+)*\.(?:service|timer)$/;

export const EXEC_KEYS = new Set(['ExecStart', 'ExecStartPre', 'ExecStartPost', 'ExecCondition', 'ExecReload', 'ExecStop', 'ExecStopPost']);
// `-` (ignore failure) and `:` (no variable expansion) grant nothing; `+`, `!`, `!!` run the command
// with root's privileges, `@` hands it another argv[0] (a disguise in ps and the journal).
export const ALLOWED_EXEC_PREFIX = /^[-:]*$/;

/** The allowed capabilities per unit: what the real app's units ask for, nothing else. */
export const ALLOWED_CAPABILITIES: Record<string, string[]> = {
  'smolotchi-core-net.service': ['CAP_NET_ADMIN', 'CAP_NET_RAW'],
  'smolotchi-core.service': ['CAP_NET_RAW'],
};
export const CAPABILITY_KEYS = new Set(['AmbientCapabilities', 'CapabilityBoundingSet']);

/** Sandboxing a release may turn off for one unit; `status` lists what each unit loosened. */
export const SANDBOX_KEYS = new Set([
  'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'PrivateNetwork', 'PrivateIPC', 'PrivateUsers', 'PrivateMounts',
  'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectKernelLogs', 'ProtectControlGroups', 'ProtectClock',
  'ProtectHostname', 'MemoryDenyWriteExecute', 'RestrictRealtime', 'LockPersonality', 'RemoveIPC',
]);
export const PATH_LOOSENING_KEYS = new Set(['ReadWritePaths']);

function isTrue(v: string): boolean {
  return /^(1|yes|true|on)$/i.test(v);
}

function isNone(v: string): boolean {
  return v === '' || v === 'none';
}

function isPlainStream(v: string): boolean {
  return /^(inherit|null|journal|syslog|socket)$/.test(v) || v === '';
}

export function isFalse(v: string): boolean {
  return /^(0|no|false|off)$/i.test(v);
}
