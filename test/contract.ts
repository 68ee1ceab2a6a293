// SPEC section 4 (schemaVersion 1) as assertions: every documented field is present with
// its documented type. Extra fields are allowed (the contract only grows).
import { expect } from 'vitest';

type Shape = 'number' | 'string' | 'boolean' | 'null' | 'array' | 'object';
const t = (v: unknown): Shape => (v === null ? 'null' : Array.isArray(v) ? 'array' : (typeof v as Shape));

function has(obj: unknown, where: string, fields: Record<string, Shape | Shape[]>): void {
  expect(t(obj), where).toBe('object');
  for (const [k, shape] of Object.entries(fields)) {
    const allowed = Array.isArray(shape) ? shape : [shape];
    expect(obj as object, `${where}.${k}`).toHaveProperty(k);
    expect(allowed, `${where}.${k} is ${t((obj as Record<string, unknown>)[k])}`).toContain(t((obj as Record<string, unknown>)[k]));
  }
}

export function assertMeta(m: unknown, where = 'snapshot'): void {
  has(m, where, { id: ['number', 'null'], takenAt: 'string', bootId: 'string', hostname: 'string', kernel: 'string', label: ['string', 'null'], durationMs: 'number' });
  expect(new Date((m as { takenAt: string }).takenAt).toISOString()).toBe((m as { takenAt: string }).takenAt);
}

export function assertPin(p: unknown, where = 'pin'): void {
  has(p, where, {
    instance: 'string', path: 'string', mountPaths: 'array', inode: 'number', createdAt: 'string', uid: 'number', gid: 'number',
    mode: 'string', object: ['object', 'null'], holders: 'array', usedBy: 'array', status: 'string', reasons: 'array', owner: 'object', creator: ['object', 'null'],
  });
  const pin = p as Record<string, any>;
  expect(pin.path.startsWith('/'), `${where}.path is relative to the instance root with a leading /`).toBe(true);
  expect(pin.mode).toMatch(/^0[0-7]{3}$/);
  expect(['held', 'in-use', 'orphaned', 'leaked', 'persistent', 'unreadable']).toContain(pin.status);
  for (const m of pin.mountPaths) has(m, `${where}.mountPaths[]`, { mntNs: 'number', path: 'string' });
  if (pin.object) {
    has(pin.object, `${where}.object`, { kind: 'string', id: 'number', name: 'string', type: 'string', memlockBytes: 'number' });
    expect(['map', 'prog', 'link', 'unknown']).toContain(pin.object.kind);
  }
  for (const h of pin.holders) {
    has(h, `${where}.holders[]`, { pid: 'number', startTime: 'number', comm: 'string', fds: 'array', mntNs: 'number', container: ['object', 'null'] });
  }
  for (const u of pin.usedBy) has(u, `${where}.usedBy[]`, { kind: 'string', id: 'number' });
  for (const r of pin.reasons) expect(typeof r).toBe('string');
  has(pin.owner, `${where}.owner`, { tool: ['string', 'null'], persistent: 'boolean', pathPid: ['number', 'null'], pathPidAlive: ['boolean', 'null'] });
  if (pin.creator) {
    has(pin.creator, `${where}.creator`, { pid: 'number', startTime: ['number', 'null'], comm: ['string', 'null'], alive: 'boolean', firstSeenSnapshot: ['number', 'null'] });
  }
}

export function assertSnapshotDoc(doc: unknown): void {
  has(doc, 'doc', { schemaVersion: 'number', snapshot: 'object', namespaces: 'array', instances: 'array', pins: 'array', summary: 'object', errors: 'array' });
  const d = doc as Record<string, any>;
  expect(d.schemaVersion).toBe(1);
  assertMeta(d.snapshot);
  for (const n of d.namespaces) {
    has(n, 'namespace', { mntNs: 'number', reachedVia: 'string', pids: 'array', processCount: 'number', nsfsPaths: 'array', error: ['string', 'null'] });
    expect(['process', 'nsfs', 'fd']).toContain(n.reachedVia);
  }
  for (const i of d.instances) {
    has(i, 'instance', { dev: 'string', mounts: 'array', delegation: ['object', 'null'], pinCount: 'number', memlockBytes: 'number', error: ['string', 'null'] });
    expect(i.dev).toMatch(/^\d+:\d+$/);
    for (const m of i.mounts) has(m, 'instance.mounts[]', { mntNs: 'number', mountId: 'number', mountPoint: 'string', root: 'string', superOptions: 'string' });
    if (i.delegation) has(i.delegation, 'instance.delegation', { cmds: ['string', 'null'], maps: ['string', 'null'], progs: ['string', 'null'], attachs: ['string', 'null'] });
  }
  d.pins.forEach((p: unknown, n: number) => assertPin(p, `pins[${n}]`));
  has(d.summary, 'summary', { namespaces: 'number', instances: 'number', pins: 'number', byStatus: 'object', memlockBytes: 'object' });
  has(d.summary.byStatus, 'summary.byStatus', { held: 'number', 'in-use': 'number', orphaned: 'number', leaked: 'number', persistent: 'number', unreadable: 'number' });
  has(d.summary.memlockBytes, 'summary.memlockBytes', { total: 'number', orphaned: 'number', leaked: 'number' });
  expect(d.summary.pins).toBe(d.pins.length);
  expect(d.summary.namespaces).toBe(d.namespaces.length);
  expect(d.summary.instances).toBe(d.instances.length);
  for (const e of d.errors) has(e, 'errors[]', { scope: 'string', message: 'string' });
}
