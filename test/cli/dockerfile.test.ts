// The Dockerfile builds from a clean checkout: its COPY and RUN steps replayed in a scratch
// root, since no container engine runs here. It runs `npm ci` inside the image (minutes),
// so CI runs this file once, under the image's own Node.js major (see .ci/run).
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO, scratchForFile } from '../helpers.js';

const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

const scratchDir = scratchForFile('pinleak-deploy-');

// ---- a Dockerfile, replayed ----

type Step =
  | { op: 'WORKDIR'; dir: string }
  | { op: 'COPY'; from: string | null; srcs: string[]; dst: string }
  | { op: 'RUN'; cmd: string }
  | { op: 'ENV'; vars: [string, string][] }
  | { op: 'ENTRYPOINT'; argv: string[] };
interface Stage { name: string | null; steps: Step[] }

/** The instructions this repository's Dockerfile uses; any other one fails the test (so the replay never silently skips a step). */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const line of lines) {
    const [op, ...rest] = line.split(/\s+/);
    const args = line.slice(op!.length).trim();
    if (op === 'FROM') {
      stages.push({ name: /\bAS\s+(\S+)$/i.exec(args)?.[1] ?? null, steps: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`${op} before FROM`);
    if (op === 'WORKDIR') stage.steps.push({ op, dir: args });
    else if (op === 'RUN') stage.steps.push({ op, cmd: args });
    else if (op === 'COPY') {
      const from = rest[0]?.startsWith('--from=') ? rest.shift()!.slice('--from='.length) : null;
      stage.steps.push({ op, from, srcs: rest.slice(0, -1), dst: rest.at(-1)! });
    } else if (op === 'ENV') {
      stage.steps.push({ op, vars: rest.map((kv) => kv.split('=', 2) as [string, string]) });
    } else if (op === 'ENTRYPOINT') stage.steps.push({ op, argv: JSON.parse(args) as string[] });
    else if (op !== 'CMD') throw new Error(`the replay does not know ${op}`);
  }
  return stages;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * A bash script that builds every stage as an overlay over this host's root (Debian with
 * Node 20: what node:20-bookworm-slim is), run in a private mount namespace so nothing
 * is mounted outside it, then runs the final stage's ENTRYPOINT with `args`.
 */
function replayScript(stages: Stage[], context: string, dir: string, args: string[]): string {
  const out = ['set -euo pipefail', 'mount --make-rprivate /'];
  const roots = new Map<string, string>();
  let env: [string, string][] = [];
  let entry: string[] = [];
  stages.forEach((stage, i) => {
    const root = path.join(dir, `stage${i}`, 'root');
    const base = path.dirname(root);
    out.push(`mkdir -p ${q(base)}/upper ${q(base)}/work ${q(root)}`,
      `mount -t overlay overlay -o lowerdir=/,upperdir=${q(base)}/upper,workdir=${q(base)}/work ${q(root)}`,
      `mount --rbind /proc ${q(root)}/proc`, `mount --rbind /dev ${q(root)}/dev`);
    let wd = '/';
    env = [];
    for (const s of stage.steps) {
      if (s.op === 'WORKDIR') {
        wd = path.posix.resolve(wd, s.dir);
        out.push(`mkdir -p ${q(root + wd)}`);
      } else if (s.op === 'ENV') env.push(...s.vars);
      else if (s.op === 'ENTRYPOINT') entry = s.argv;
      else if (s.op === 'COPY') {
        const from = s.from === null ? context : roots.get(s.from);
        if (!from) throw new Error(`COPY --from=${s.from}: no such stage`);
        const dst = root + path.posix.resolve(wd, s.dst);
        const intoDir = s.dst.endsWith('/') || s.srcs.length > 1;
        for (const src of s.srcs) {
          const p = q(path.join(from, src));
          // Docker: a missing source fails the build; a directory's contents are copied
          out.push(`test -e ${p} || { echo "COPY ${src}: not in the build context" >&2; exit 1; }`,
            `if [ -d ${p} ]; then mkdir -p ${q(dst)} && cp -a ${p}/. ${q(dst)}/; `
            + `elif ${intoDir}; then mkdir -p ${q(dst)} && cp -a ${p} ${q(dst)}/; `
            + `else mkdir -p "$(dirname ${q(dst)})" && cp -a ${p} ${q(dst)}; fi`);
        }
      } else {
        const vars = env.map(([k, v]) => `${k}=${q(v)}`).join(' ');
        out.push(`chroot ${q(root)} /usr/bin/env -i PATH=${IMAGE_PATH} HOME=/root ${vars} /bin/sh -c ${q(`cd ${wd} && ${s.cmd}`)}`);
      }
    }
    if (stage.name) roots.set(stage.name, root);
  });
  const last = path.join(dir, `stage${stages.length - 1}`, 'root');
  const vars = env.map(([k, v]) => `${k}=${q(v)}`).join(' ');
  out.push(`chroot ${q(last)} /usr/bin/env -i PATH=${IMAGE_PATH} HOME=/root ${vars} ${[...entry, ...args].map(q).join(' ')}`);
  return out.join('\n');
}

describe('the Dockerfile', () => {
  it('builds from a clean checkout: its COPY and RUN steps replayed, the image runs pinleak', () => {
    const context = path.join(scratchDir.dir, 'checkout');
    // a clean checkout: the tracked files only (no dist/, no node_modules/)
    const files = execFileSync('git', ['ls-files', '-z'], { cwd: REPO, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const f of files) {
      if (!fs.existsSync(path.join(REPO, f))) continue; // deleted in the work tree, not yet committed
      fs.mkdirSync(path.dirname(path.join(context, f)), { recursive: true });
      fs.copyFileSync(path.join(REPO, f), path.join(context, f));
    }
    const stages = parseDockerfile(fs.readFileSync(path.join(context, 'deploy/kubernetes/Dockerfile'), 'utf8'));
    expect(stages.map((s) => s.steps.filter((x) => x.op === 'RUN').length)).toEqual([1, 1]);
    const r = spawnSync('unshare', ['--mount', '--fork', 'bash', '-c', replayScript(stages, context, path.join(scratchDir.dir, 'image'), ['--help'])],
      { encoding: 'utf8', timeout: 540_000, maxBuffer: 1 << 26 });
    expect(r.status, r.stderr.slice(-3000)).toBe(0);
    // the RUN's own `pinleak --version`, then the ENTRYPOINT's help, which finds the shipped schemas
    expect(r.stdout).toMatch(new RegExp(`^${VERSION.replace(/\./g, '\\.')}$`, 'm'));
    expect(r.stdout).toMatch(/a JSON Schema \(draft 2020-12\) of each is in\s+\/opt\/pinleak\/docs\/schema/);
  }, 600_000);
});

