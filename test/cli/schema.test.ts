// The JSON contract in the repository: every --json document pinleak prints validates
// against its JSON Schema in docs/schema/ (ajv, draft 2020-12), on real output of a real
// world: a held pin, a leaked one, a command that leaves a pin behind, a clean.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { worldForFile } from '../world/for-file.js';
import type { Agent, Mount } from '../world/world.js';
import { pinleak } from '../helpers.js';
import { assertDocument, schemaErrors, DOCUMENTS, type DocumentName } from '../contract.js';

const PIN_AND_EXIT = fileURLToPath(new URL('../world/pin-and-exit.mjs', import.meta.url));
const SCHEMA_DIR = fileURLToPath(new URL('../../docs/schema/', import.meta.url));

let bpffs: Mount;
let holder: Agent;
const t = worldForFile(async ({ world, db }) => {
  bpffs = await world.mountBpffs('schema');
  holder = await world.spawnAgent();
  const kept = await holder.call({ op: 'map', name: 'schema_kept' });
  await holder.call({ op: 'pin', fd: kept.fd!, path: path.join(bpffs.path, 'app/kept') });
  const maker = await world.spawnAgent();
  const lost = await maker.call({ op: 'map', name: 'schema_lost' });
  await maker.call({ op: 'pin', fd: lost.fd!, path: path.join(bpffs.path, 'app/lost') });
  expect(pinleak(['scan', '--quiet', '--label', 'first'], { db: db.db }).code).toBe(0); // sees the maker holding it
  await maker.exit();
  expect(pinleak(['scan', '--quiet'], { db: db.db }).code).toBe(0);
});

/** Runs pinleak with --json and returns the parsed document (exit codes 0 and 1 are answers). */
function json(args: string[]): unknown {
  const r = pinleak(['--json', ...args], { db: t.db.db }); // before a `run -- CMD`'s own arguments
  expect([0, 1], `${args.join(' ')}: ${r.stderr}`).toContain(r.code);
  return JSON.parse(r.stdout);
}

describe('the JSON Schemas in docs/schema', () => {
  it('one per document, each a draft 2020-12 schema that ajv compiles in strict mode', () => {
    const files = fs.readdirSync(SCHEMA_DIR).sort();
    expect(files).toEqual(['defs.json', ...DOCUMENTS.map((d) => `${d}.json`)].sort());
    for (const f of files) expect(JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, f), 'utf8')).$schema).toBe('https://json-schema.org/draft/2020-12/schema');
  });

  it('are named by --help, with the directory they are installed in', () => {
    const help = pinleak(['--help']).stdout.replace(/\s+/g, ' ');
    const dir = /a JSON Schema \(draft 2020-12\) of each is in (\S+)/.exec(help)?.[1];
    expect(dir && fs.realpathSync(dir)).toBe(fs.realpathSync(SCHEMA_DIR));
    expect(help).toContain('docs/json.md');
  });

  it('validate what every command prints', () => {
    const ours = `--instance=${bpffs.dev}`;
    const docs: [DocumentName, unknown][] = [
      ['snapshot', json(['scan', '--no-store'])],
      ['snapshot', json(['pins', 'latest', ours])],
      ['snapshot', json(['leaks', 'latest', ours])],
      ['snapshot', json(['mounts'])],
      ['snapshots', json(['snapshots'])],
      ['diff', json(['diff', 'first', 'latest'])],
      ['gate', json(['gate', '--baseline', 'first', '--no-store'])],
      ['run', json(['run', '--', process.execPath, PIN_AND_EXIT, path.join(bpffs.path, 'run/left'), '0', '300'])],
      ['clean', json(['clean', '--status', 'leaked', ours])],
      ['clean', json(['clean', '--status', 'leaked', ours, '--path', '/app/lost', '--yes'])],
      ['prune', json(['prune', '--keep', '100'])],
      ['export', json(['export', 'prometheus', '--output', path.join(t.db.dir, 'pinleak.prom')])],
    ];
    for (const [name, doc] of docs) assertDocument(doc, name);
    // the documents hold what makes them worth validating: pins of every kind of interest
    const leaked = docs[2]![1] as { pins: { path: string; status: string; creator: unknown }[] };
    expect(leaked.pins.find((p) => p.path === '/app/lost')).toMatchObject({ status: 'leaked', creator: { alive: false } });
    expect((docs[7]![1] as { leftBehind: unknown[] }).leftBehind).toHaveLength(1);
    expect((docs[9]![1] as { removed: { path: string }[] }).removed.map((p) => p.path)).toEqual(['/app/lost']);
  });

  it('reject a broken document (the validation is not a no-op), and allow added fields', () => {
    const doc = json(['pins', 'latest', `--instance=${bpffs.dev}`]) as { pins: Record<string, unknown>[]; [k: string]: unknown };
    const pin = doc.pins[0]!;
    expect(schemaErrors({ ...doc, pins: undefined }, 'snapshot.json').join('\n')).toMatch(/must have required property 'pins'/);
    expect(schemaErrors({ ...pin, status: 'gone' }, 'defs.json#/$defs/pin').join('\n')).toMatch(/\/status must be equal to one of the allowed values/);
    expect(schemaErrors({ ...pin, mode: 644 }, 'defs.json#/$defs/pin').join('\n')).toMatch(/\/mode must be string/);
    // SPEC: fields are added freely; other kinds of users (tc, xdp, cgroup) with a `via`
    const grown = { ...doc, objects: [], pins: [{ ...pin, usedBy: [{ kind: 'tc', id: 7, via: 'ingress of eth0' }, { kind: 'cgroup', via: '/sys/fs/cgroup/x' }], note: 'new' }] };
    expect(schemaErrors(grown, 'snapshot.json')).toEqual([]);
  });
});
