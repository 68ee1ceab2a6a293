// The JSON contract (schemaVersion 1) as assertions: a document must validate against its
// JSON Schema in docs/schema/ (draft 2020-12, checked with ajv, a maintained validator),
// plus the invariants a schema cannot state. Extra fields are allowed (the contract only grows).
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { expect } from 'vitest';

const SCHEMA_DIR = fileURLToPath(new URL('../docs/schema/', import.meta.url));

export const DOCUMENTS = ['snapshot', 'snapshots', 'diff', 'gate', 'run', 'clean', 'prune', 'export'] as const;
export type DocumentName = (typeof DOCUMENTS)[number];

const ajv = new Ajv2020({ allErrors: true, strict: true });
for (const f of fs.readdirSync(SCHEMA_DIR).filter((n) => n.endsWith('.json'))) {
  ajv.addSchema(JSON.parse(fs.readFileSync(SCHEMA_DIR + f, 'utf8')) as object);
}

const validators = new Map<string, ValidateFunction>();
function validator(ref: string): ValidateFunction {
  let v = validators.get(ref);
  if (!v) {
    v = ajv.getSchema(ref);
    if (!v) throw new Error(`no schema ${ref}`);
    validators.set(ref, v);
  }
  return v;
}

// compiled now, in strict mode: a schema ajv finds ambiguous fails every test that uses it
for (const d of DOCUMENTS) validator(`${d}.json`);

/** The schema's complaints about `value`, one line each (empty when it is valid). */
export function schemaErrors(value: unknown, ref: string): string[] {
  const v = validator(ref);
  return v(value) ? [] : (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

function assertValid(value: unknown, ref: string, where: string): void {
  expect(schemaErrors(value, ref), `${where} against ${ref}`).toEqual([]);
}

/** A whole --json document against its schema (docs/schema/<name>.json). */
export function assertDocument(doc: unknown, name: DocumentName): void {
  assertValid(doc, `${name}.json`, name);
}

export function assertMeta(m: unknown, where = 'snapshot'): void {
  assertValid(m, 'defs.json#/$defs/snapshotMeta', where);
  expect(new Date((m as { takenAt: string }).takenAt).toISOString()).toBe((m as { takenAt: string }).takenAt);
}

export function assertPin(p: unknown, where = 'pin'): void {
  assertValid(p, 'defs.json#/$defs/pin', where);
}

export function assertSnapshotDoc(doc: unknown): void {
  assertDocument(doc, 'snapshot');
  const d = doc as { snapshot: unknown; pins: unknown[]; namespaces: unknown[]; instances: unknown[]; summary: { pins: number; namespaces: number; instances: number } };
  assertMeta(d.snapshot);
  expect(d.summary.pins).toBe(d.pins.length);
  expect(d.summary.namespaces).toBe(d.namespaces.length);
  expect(d.summary.instances).toBe(d.instances.length);
}
