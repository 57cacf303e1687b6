import { promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * A release already current under a sandbox root, whose app CLI reports what it was given (argv,
 * ids, environment, folder), copies stdin, exits with a chosen code, or waits for a signal: enough
 * to prove the pass-through changes nothing on the way. Its venv interpreter is the system python.
 */
const FIXTURE_CLI = String.raw`import json, os, signal, sys, time
args = sys.argv[1:]
# The built-in pass-through puts --db, --artifact-root and --config before the command.
opts = {}
while args and args[0] in ("--db", "--artifact-root", "--config"):
    opts[args[0]] = args[1]
    args = args[2:]
cmd, rest = (args[0], args[1:]) if args else ("", [])
if cmd == "report":
    print(json.dumps({"module": "smolotchi.cli", "opts": opts, "argv": args, "uid": os.getuid(), "gid": os.getgid(),
                      "groups": sorted(os.getgroups()), "cwd": os.getcwd(), "env": dict(os.environ)}))
elif cmd == "exit":
    sys.exit(int(rest[0]))
elif cmd == "cat":
    sys.stdout.write(sys.stdin.read())
elif cmd == "wait":
    # os.write/_exit: the signal may land while print() still holds stdout's buffer.
    signal.signal(signal.SIGHUP, lambda *_: (os.write(1, b"got SIGHUP\n"), os._exit(0)))
    print("ready", flush=True)
    for _ in range(600):
        time.sleep(0.1)
    sys.exit(99)
elif cmd == "die":
    os.kill(os.getpid(), signal.SIGTERM)
elif cmd == "touch":
    open(rest[0], "w").close()
else:
    print("unknown command " + cmd, file=sys.stderr)
    sys.exit(2)
`;

const FIXTURE_WORKER = `import json, sys\nprint(json.dumps({"module": "smolotchi.ai.worker", "argv": sys.argv[1:]}))\n`;

export const FIXTURE_VERSION = '1.0.0';

export async function writeCurrentFixture(root: string, opts: { wrapper?: boolean } = {}): Promise<string> {
  const release = path.join(root, 'opt/smolotchi/releases', FIXTURE_VERSION);
  const files: Record<string, string> = {
    'smolotchi/__init__.py': '',
    'smolotchi/cli.py': FIXTURE_CLI,
    'smolotchi/ai/__init__.py': '',
    'smolotchi/ai/worker.py': FIXTURE_WORKER,
  };
  for (const [rel, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(release, rel)), { recursive: true });
    await fs.writeFile(path.join(release, rel), content);
  }
  await fs.mkdir(path.join(release, '.venv/bin'), { recursive: true });
  await fs.symlink('/usr/bin/python3', path.join(release, '.venv/bin/python'));
  if (opts.wrapper) {
    await fs.mkdir(path.join(release, 'packaging/bin'), { recursive: true });
    await fs.writeFile(path.join(release, 'packaging/bin/smolotchi'), '#!/bin/sh\necho "release wrapper: SMOLOTCHI_PY=$SMOLOTCHI_PY args: $*"\nexit 4\n', { mode: 0o755 });
  }
  await fs.symlink(`releases/${FIXTURE_VERSION}`, path.join(root, 'opt/smolotchi/current'));
  return release;
}

/** The service account in the sandbox's own passwd/group files (the uid need not exist on the host). */
export async function writeServiceAccount(root: string, uid = 4242, extraGroup = 4343): Promise<void> {
  await fs.mkdir(path.join(root, 'etc'), { recursive: true });
  await fs.writeFile(path.join(root, 'etc/passwd'), `root:x:0:0:root:/root:/bin/sh\nsmolotchi:x:${uid}:${uid}:smolotchi app:/var/lib/smolotchi:/usr/sbin/nologin\n`);
  await fs.writeFile(path.join(root, 'etc/group'), `root:x:0:\nsmolotchi:x:${uid}:\ngpio:x:${extraGroup}:smolotchi\n`);
}
