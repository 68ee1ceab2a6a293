// The user's config file (--config PATH, default /etc/pinleak/config.json when present):
//
//   { "owners":    [ { "tool": "myagent", "persistent": true, "paths": ["myagent/**"], "names": ["ma_"] } ],
//     "ignore":    [ { "path": "glob", "name": "prefix", "instance": "MAJ:MIN", "reason": "text" } ],
//     "retention": { "keep": 100, "olderThan": "30d" } }
//
// Every key is optional. Validation is strict: an unknown key or a wrong type is an error
// naming the file and the field, never silently ignored. Only loadConfig touches the disk.
import { readFileSync } from 'node:fs';
import { PinleakError } from '../errors.js';
import { copyRule, globMatch, globProblem, nameHasPrefix, ownerRuleProblem, type OwnerRule } from './owners.js';

export const DEFAULT_CONFIG_PATH = '/etc/pinleak/config.json';

/** Matches a pin when every field given matches (at least one of path, name, instance). */
export interface IgnoreRule {
  /** glob on the pin's path relative to its instance root (see owners.ts) */
  path?: string;
  /** prefix of the object's name */
  name?: string;
  /** the instance's MAJ:MIN */
  instance?: string;
  reason?: string;
}

export interface Retention {
  /** keep at least the N newest snapshots */
  keep?: number;
  /** drop snapshots older than this duration (parseDuration) */
  olderThan?: string;
}

/** The validated file: the same shape, every key optional (absent when the file omits it). */
export interface Config {
  owners?: OwnerRule[];
  ignore?: IgnoreRule[];
  retention?: Retention;
}

/**
 * The retention applied after every stored scan when the config sets none: a timer every
 * 5 minutes stores 288 snapshots a day, and without a bound the history grows forever.
 */
export const DEFAULT_RETENTION: Readonly<Retention> = { olderThan: '30d' };

export function emptyConfig(): Config {
  return {};
}

// ---------------------------------------------------------------------------------------
// Durations

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const DURATION_HELP = 'a whole number followed by s, m, h, d or w, for example 90s, 15m, 12h, 7d, 2w';

function durationMs(s: string): number | null {
  const m = /^([0-9]+)([smhdw])$/.exec(s.trim());
  if (!m) return null;
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  return Number.isSafeInteger(ms) ? ms : null;
}

/** `90s`, `15m`, `12h`, `7d`, `2w` -> milliseconds; anything else is a PinleakError naming it. */
export function parseDuration(s: string): number {
  const ms = typeof s === 'string' ? durationMs(s) : null;
  if (ms === null) throw new PinleakError(`bad duration "${String(s)}": use ${DURATION_HELP}`);
  return ms;
}

// ---------------------------------------------------------------------------------------
// JSON errors with a line and column (Node 20's messages often carry no position)

/** Offset of the first syntax error in `text`, or null if it is valid JSON. */
function jsonErrorOffset(text: string): number | null {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  class At {
    constructor(readonly at: number) {}
  }
  const fail = (at = i): never => {
    throw new At(at);
  };
  const lit = (word: string) => {
    for (const ch of word) {
      if (text[i] !== ch) fail();
      i++;
    }
  };
  const str = () => {
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail();
      if (c === 0x5c) {
        i++;
        const e = text[i];
        if (e === 'u') {
          for (let k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(text[i + k] ?? '')) fail(i + k);
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else fail();
      } else i++;
    }
  };
  const num = () => {
    if (text[i] === '-') i++;
    if (text[i] === '0') i++;
    else if (/[1-9]/.test(text[i] ?? '')) while (/[0-9]/.test(text[i] ?? '')) i++;
    else fail();
    if (text[i] === '.') {
      i++;
      if (!/[0-9]/.test(text[i] ?? '')) fail();
      while (/[0-9]/.test(text[i] ?? '')) i++;
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      if (!/[0-9]/.test(text[i] ?? '')) fail();
      while (/[0-9]/.test(text[i] ?? '')) i++;
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        str();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail();
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail();
      }
    } else if (c === '"') str();
    else if (c === 't') lit('true');
    else if (c === 'f') lit('false');
    else if (c === 'n') lit('null');
    else if (c === '-' || /[0-9]/.test(c ?? '')) num();
    else fail();
  };
  try {
    value();
    ws();
    if (i < text.length) fail();
    return null;
  } catch (e) {
    if (e instanceof At) return e.at;
    throw e;
  }
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { line, column };
}

function jsonErrorMessage(text: string, err: Error): string {
  // V8: `Unexpected token '}', "{"a": }" is not valid JSON`, `... in JSON at position 7`
  let msg = err.message
    .replace(/, (?:\.\.\.)?".*" is not valid JSON$/s, '')
    .replace(/ at position \d+.*$/s, '')
    .replace(/ in JSON$/, '')
    .replace(/ \(line \d+ column \d+\)$/, '');
  const pos = /at position (\d+)/.exec(err.message);
  const offset = jsonErrorOffset(text) ?? (pos ? Number(pos[1]) : null);
  if (offset !== null) {
    const { line, column } = lineColumn(text, Math.min(offset, text.length));
    msg += ` at line ${line} column ${column}`;
  }
  return msg;
}

// ---------------------------------------------------------------------------------------
// Validation

const TOP_KEYS = ['owners', 'ignore', 'retention'];
const IGNORE_KEYS = ['path', 'name', 'instance', 'reason'];
const RETENTION_KEYS = ['keep', 'olderThan'];
const INSTANCE_RE = /^[0-9]+:[0-9]+$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unknownKey(o: Record<string, unknown>, allowed: string[], field: string): string | null {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) return `${field ? `${field}.` : ''}${k} is not a known key (expected ${allowed.join(', ')})`;
  }
  return null;
}

function ignoreProblem(v: unknown, field: string): string | null {
  if (!isObject(v)) return `${field} must be an object`;
  const bad = unknownKey(v, IGNORE_KEYS, field);
  if (bad) return bad;
  for (const k of IGNORE_KEYS) {
    if (v[k] !== undefined && typeof v[k] !== 'string') return `${field}.${k} must be a string`;
  }
  if (v.path === undefined && v.name === undefined && v.instance === undefined) {
    return `${field} needs at least one of path, name, instance`;
  }
  if (v.path !== undefined) {
    const p = globProblem(v.path as string);
    if (p) return `${field}.path is not a valid glob: ${p}`;
  }
  if (v.name === '') return `${field}.name must not be empty (it would match every pin)`;
  if (v.instance !== undefined && !INSTANCE_RE.test(v.instance as string)) {
    return `${field}.instance must be a device number MAJ:MIN, for example 0:39 (got "${v.instance as string}")`;
  }
  return null;
}

/** Parse and validate a config file's text; `file` names it in every error message. */
export function parseConfig(text: string, file: string): Config {
  const fail = (what: string): never => {
    throw new PinleakError(`config ${file}: ${what}`);
  };
  const body = text.replace(/^\uFEFF/, '');
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (e) {
    fail(`not valid JSON (${jsonErrorMessage(body, e as Error)})`);
  }
  if (!isObject(doc)) return fail('must be a JSON object ({ "owners": [...], "ignore": [...], "retention": {...} })');
  const bad = unknownKey(doc, TOP_KEYS, '');
  if (bad) fail(bad);

  const config: Config = {};

  if (doc.owners !== undefined) {
    if (!Array.isArray(doc.owners)) fail('owners must be an array');
    const owners: OwnerRule[] = (config.owners = []);
    (doc.owners as unknown[]).forEach((r, i) => {
      const p = ownerRuleProblem(r, `owners[${i}]`);
      if (p) fail(p);
      const rule = r as OwnerRule;
      owners.push({ ...copyRule(rule), source: rule.source ?? `config ${file}` });
    });
  }

  if (doc.ignore !== undefined) {
    if (!Array.isArray(doc.ignore)) fail('ignore must be an array');
    const ignore: IgnoreRule[] = (config.ignore = []);
    (doc.ignore as unknown[]).forEach((r, i) => {
      const p = ignoreProblem(r, `ignore[${i}]`);
      if (p) fail(p);
      const rule = r as IgnoreRule;
      const out: IgnoreRule = {};
      if (rule.path !== undefined) out.path = rule.path;
      if (rule.name !== undefined) out.name = rule.name;
      if (rule.instance !== undefined) out.instance = rule.instance;
      if (rule.reason !== undefined) out.reason = rule.reason;
      ignore.push(out);
    });
  }

  if (doc.retention !== undefined) {
    const r = doc.retention;
    if (!isObject(r)) return fail('retention must be an object');
    const badKey = unknownKey(r, RETENTION_KEYS, 'retention');
    if (badKey) fail(badKey);
    const retention: Retention = (config.retention = {});
    if (r.keep !== undefined) {
      if (typeof r.keep !== 'number' || !Number.isSafeInteger(r.keep) || r.keep < 0) {
        fail('retention.keep must be a whole number, 0 or more');
      }
      retention.keep = r.keep as number;
    }
    if (r.olderThan !== undefined) {
      if (typeof r.olderThan !== 'string') fail(`retention.olderThan must be a string (${DURATION_HELP})`);
      const ms = durationMs(r.olderThan as string);
      if (ms === null) fail(`retention.olderThan must be ${DURATION_HELP} (got "${r.olderThan as string}")`);
      retention.olderThan = r.olderThan as string;
    }
  }
  return config;
}

/**
 * Load the config: an explicit path (--config) must exist; without one, the default path is
 * used when present and an empty config otherwise. A file that exists but cannot be read or
 * parsed is always an error.
 */
export function loadConfig(explicitPath: string | undefined, defaultPath: string = DEFAULT_CONFIG_PATH): Config {
  const file = explicitPath ?? defaultPath;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && explicitPath === undefined) return emptyConfig();
    const why =
      code === 'ENOENT' ? 'no such file (given with --config)'
      : code === 'EACCES' || code === 'EPERM' ? 'permission denied'
      : code === 'EISDIR' ? 'is a directory, not a file'
      : (e as Error).message;
    throw new PinleakError(`config ${file}: ${why}`);
  }
  return parseConfig(text, file);
}

/** The first ignore rule matching the pin (all of the rule's fields must match), or null. */
export function matchIgnore(
  config: Pick<Config, 'ignore'> | null | undefined,
  pin: { instance: string; path: string; objectName: string | null },
): IgnoreRule | null {
  for (const rule of config?.ignore ?? []) {
    if (rule.path === undefined && rule.name === undefined && rule.instance === undefined) continue;
    if (rule.instance !== undefined && rule.instance !== pin.instance) continue;
    if (rule.name !== undefined && (pin.objectName === null || !nameHasPrefix(pin.objectName, rule.name))) continue;
    if (rule.path !== undefined && (globProblem(rule.path) !== null || !globMatch(rule.path, pin.path))) continue;
    return rule;
  }
  return null;
}
