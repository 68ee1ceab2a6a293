// pinleak demo: a throw-away world (a private mount namespace with its own bpffs, a live
// holder, an OpenTelemetry-style creator that exits) walked through scan, leaks, diff and
// clean with a temporary database. Leaves nothing behind, also on Ctrl-C: the world's
// processes end when their stdin closes, and its bpffs dies with its namespace.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { Argv } from 'yargs';
import { PinleakError } from '../errors.js';
import { packageRoot } from '../package.js';
import { readMountinfo } from '../kernel/procfs.js';
import { paint } from '../report/format.js';
import { type GlobalArgs, requirePrivileges, outStyle } from './common.js';
import { copyStore, openStore } from '../store/index.js';

// the actors run as tsc built them; pinleak itself is re-run as it was started
const ACTOR = path.join(packageRoot(), 'dist', 'demo', 'actor.js');
const CLI = process.argv[1]!;

interface Actor {
  child: ChildProcess;
  pid: number;
}

function startActor(argv: string[], children: ChildProcess[]): Promise<Actor> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout! });
    rl.once('line', (line) => {
      const [word, rest] = [line.split(' ')[0], line.slice(line.indexOf(' ') + 1)];
      if (word === 'ready') resolve({ child, pid: Number(rest) });
      else reject(new PinleakError(`demo: ${argv.slice(-2).join(' ')} failed: ${rest}`));
    });
    child.once('exit', (code) => reject(new PinleakError(`demo: ${argv.slice(-2).join(' ')} exited with code ${code}`)));
    child.once('error', (e) => reject(new PinleakError(`demo: cannot start ${argv[0]}: ${e.message}`)));
  });
}

export const demoCommand = {
  command: 'demo',
  describe: 'build a throw-away namespace with a bpffs, a live holder and a leak, and walk through scan, diff and clean on it',
  builder: (y: Argv) => y
    .option('keep-db', { type: 'string', describe: 'keep a copy of the demo\'s database in this file (for `pinleak --db FILE report`); replaced if it exists' }),
  handler: async (a: GlobalArgs & { keepDb?: string }) => {
    requirePrivileges('pinleak demo');
    if (a.keepDb !== undefined && a.keepDb.trim() === '') throw new PinleakError('--keep-db needs a file name');
    const style = outStyle({ ...a, json: false });
    const out = (s: string) => process.stdout.write(s + '\n');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinleak-demo-'));
    const db = path.join(dir, 'demo.db');
    const bpffs = path.join(dir, 'bpf');
    const children: ChildProcess[] = [];
    const teardown = () => {
      for (const c of children) {
        c.stdin?.destroy();
        if (c.exitCode === null && c.pid) {
          try {
            process.kill(c.pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    };
    const onSignal = () => {
      teardown();
      process.stderr.write('\npinleak: demo interrupted; its namespace, bpffs, pins and processes are gone\n');
      process.exit(130);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.once('exit', teardown); // also when something calls process.exit (a closed stdout: demo | head)
    const step = (n: number, title: string, text: string) => out(`\n${paint(style, 'bold', `${n}. ${title}`)}\n${paint(style, 'dim', text)}`);
    const pinleak = (args: string[]) => {
      out(paint(style, 'cyan', `$ pinleak ${args.join(' ')}`));
      const r = spawnSync(process.execPath, [CLI, '--db', db, ...args], { stdio: ['ignore', 'inherit', 'inherit'], env: process.env });
      if (r.signal === 'SIGINT' || r.signal === 'SIGTERM') onSignal(); // Ctrl-C reached the step too
      if (r.status !== 0 && r.status !== 1) throw new PinleakError(`demo: pinleak ${args[0]} failed (exit ${r.status ?? r.signal})`);
    };
    try {
      step(1, 'A container with its own bpffs', 'A process in a private mount namespace mounts a bpffs there: the host cannot see it,\nand `bpftool` on the host cannot see its pins.');
      const container = await startActor(['unshare', '-m', '--propagation', 'private', process.execPath, ACTOR, 'container', bpffs], children);
      const dev = readMountinfo(container.pid)?.find((m) => m.fstype === 'bpf' && m.mountPoint === bpffs)?.dev;
      if (!dev) throw new PinleakError('demo: the demo bpffs did not appear in its namespace');
      const join = ['nsenter', `--mount=/proc/${container.pid}/ns/mnt`, '--', process.execPath, ACTOR];
      await startActor([...join, 'holder', path.join(bpffs, 'app', 'sessions')], children);
      const creator = await startActor([...join, 'creator', bpffs], children);
      out(`   container pid ${container.pid}, bpffs ${dev} at ${bpffs} inside its namespace`);
      out(`   a service holds ${bpffs}/app/sessions; instrumentation pid ${creator.pid} pinned ${bpffs}/${creator.pid}/{alloc_map,tracked_spans}`);

      step(2, 'Scan the host', 'pinleak finds every bpffs in every mount namespace and who holds each pin.');
      pinleak(['scan', '--label', 'before', '--quiet']);
      pinleak(['pins', '--instance', dev]);

      step(3, 'The instrumentation crashes', `pid ${creator.pid} exits without unpinning: its maps stay in kernel memory, pinned under ${creator.pid}/.`);
      creator.child.stdin!.write('exit\n');
      await new Promise((r) => creator.child.once('exit', r));

      step(4, 'Scan again: the leak and who made it', 'The earlier snapshot saw that pid hold the maps; it has exited now, so the pins are leaked.');
      pinleak(['scan', '--quiet']);
      pinleak(['leaks', '--instance', dev]);

      step(5, 'What changed since "before"', '`pinleak diff` is what you run after a deploy.');
      pinleak(['diff', 'before', 'latest']);

      step(6, 'Clean up, dry run first', 'clean re-checks every pin right before removing it, and never touches held, in-use or persistent pins.');
      pinleak(['clean', '--instance', dev]);
      pinleak(['clean', '--instance', dev, '--yes']);
      pinleak(['scan', '--quiet']);
      pinleak(['pins', '--instance', dev]);

      if (a.keepDb !== undefined) {
        const store = openStore(db, { create: false });
        try {
          copyStore(store, a.keepDb);
        } finally {
          store.close();
        }
        out(`\n   the demo's database is kept in ${a.keepDb}: pinleak --db ${a.keepDb} report --output demo.html`);
      }

      step(7, 'Tear down', 'The container exits: its namespace, bpffs and the held map go with it; the temporary database is deleted.');
    } finally {
      teardown();
      process.off('exit', teardown);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    out('done: nothing of the demo is left on this host.');
  },
};
