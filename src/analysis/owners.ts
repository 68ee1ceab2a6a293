// The owner catalog (owners.json, facts in OWNERS.md): which tool a pin belongs to, from
// its path below the bpffs instance root and its object's name, and whether that tool keeps
// pins on purpose. Pure logic: the catalog is imported as JSON, so tsc's output and the
// bundle carry it (no file to find at run time).
import { PinleakError } from '../errors.js';
import catalogFile from './owners.json' with { type: 'json' };

export interface OwnerRule {
  tool: string;
  persistent: boolean;
  paths?: string[];
  names?: string[];
  source?: string;
}

export interface OwnerMatch {
  tool: string;
  persistent: boolean;
  rule: OwnerRule;
  /** what matched, for reasons: `rule tc/globals/*` (a path glob) or `name prefix cilium_` */
  matched: string;
}

/** The kernel keeps BPF object names to 15 characters (BPF_OBJ_NAME_LEN 16 with the NUL). */
export const KERNEL_NAME_LEN = 15;

// ---------------------------------------------------------------------------------------
// Globs
//
//   *        any characters except '/'
//   **       a whole component: any number (also none) of path components
//            ('a/**' needs something below a; '**/x' also matches 'x' at the root)
//   ?        one character except '/'
//   [abc]    a class; '[a-z]' ranges, '[!x]' or '[^x]' negated; never matches '/'
//   {pid}    a decimal pid as tools print it: 1 to 7 digits, no leading zero
//            (PID_MAX_LIMIT is 4194304); may be part of a component ('beyla-{pid}')
//   {n}      one or more digits (object ids, ifindexes)
//   {sha1}   40 lowercase hex digits (iproute2's per-object directory tc/<sha1 of the ELF>)
//   \c       the character c itself
// A leading '/' on the glob or the path is ignored: pin paths are relative to the instance
// root and may be written either way. Anything else that looks like syntax ('{a,b}', '**'
// inside a component, an unclosed '[', an empty component) is refused, not guessed at.

const PID_RE = '[1-9][0-9]{0,6}';
const N_RE = '[0-9]+';
const SHA1_RE = '[0-9a-f]{40}';
const TOKENS: Record<string, string> = { '{pid}': PID_RE, '{n}': N_RE, '{sha1}': SHA1_RE };
const cache = new Map<string, RegExp | string>();

function escapeRe(c: string): string {
  return /[.*+?^${}()|[\]\\\/-]/.test(c) ? `\\${c}` : c;
}

function compileComponent(comp: string): string {
  if (comp.includes('**')) throw new Error(`'**' must be a whole path component (in "${comp}")`);
  let out = '';
  for (let i = 0; i < comp.length; i++) {
    const c = comp[i]!;
    if (c === '\\') {
      if (i + 1 >= comp.length) throw new Error('it ends with a lone backslash');
      out += escapeRe(comp[++i]!);
    } else if (c === '*') {
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '{') {
      const close = comp.indexOf('}', i);
      const token = close < 0 ? '' : comp.slice(i, close + 1);
      const re = TOKENS[token];
      if (re === undefined) throw new Error(`'{' starts none of ${Object.keys(TOKENS).join(', ')} (brace alternatives are not supported; write \\{ for a literal)`);
      out += re;
      i = close;
    } else if (c === '}') {
      throw new Error(`unmatched '}' (write \\} for a literal)`);
    } else if (c === '[') {
      let j = i + 1;
      let negate = false;
      if (comp[j] === '!' || comp[j] === '^') {
        negate = true;
        j++;
      }
      let body = '';
      let first = true;
      for (; j < comp.length; j++) {
        const d = comp[j]!;
        if (d === ']' && !first) break;
        first = false;
        if (d === '\\') {
          if (j + 1 >= comp.length) break;
          body += escapeRe(comp[++j]!);
        } else if (d === '-') {
          body += '-';
        } else {
          body += escapeRe(d);
        }
      }
      if (j >= comp.length) throw new Error(`unclosed '[' in "${comp}"`);
      try {
        new RegExp(`[${body}]`);
      } catch {
        throw new Error(`"${comp.slice(i, j + 1)}" is not a valid character class (a range goes up, as in [a-z])`);
      }
      out += negate ? `[^/${body}]` : `(?![/])[${body}]`;
      i = j;
    } else {
      out += escapeRe(c);
    }
  }
  return out;
}

function compileGlob(glob: string): RegExp {
  const trimmed = glob.replace(/^\/+/, '');
  if (trimmed === '') throw new Error('it is empty');
  const raw = trimmed.split('/');
  if (raw.some((c) => c === '')) throw new Error('it has an empty path component (a doubled or trailing "/")');
  // '**/**' is the same as '**'
  const comps = raw.filter((c, i) => !(c === '**' && raw[i - 1] === '**'));
  let re = '';
  let glued = false; // the previous '**' already supplied the separator
  comps.forEach((comp, i) => {
    const first = i === 0;
    const last = i === comps.length - 1;
    if (comp === '**') {
      if (first && last) re += '.+';
      else if (first) re += '(?:[^/]+/)*';
      else if (last) re += '/.+';
      else re += '/(?:[^/]+/)*';
      glued = true;
    } else {
      if (!first && !glued) re += '/';
      re += compileComponent(comp);
      glued = false;
    }
  });
  return new RegExp(`^${re}$`, 's');
}

function compiled(glob: string): RegExp | string {
  let c = cache.get(glob);
  if (c === undefined) {
    try {
      c = compileGlob(glob);
    } catch (e) {
      c = (e as Error).message;
    }
    cache.set(glob, c);
  }
  return c;
}

/** Why `glob` is not a valid pinleak glob, or null when it is. */
export function globProblem(glob: string): string | null {
  const c = compiled(glob);
  return typeof c === 'string' ? c : null;
}

/** Strip leading and trailing '/' from a pin path: 'a/b', '/a/b' and '/a/b/' are the same pin. */
export function normalizePinPath(p: string): string {
  // a scan's paths are all '/a/b': no regex for those (this runs for every pin, twice)
  if (p.charCodeAt(0) === 47 && p.charCodeAt(1) !== 47 && p.charCodeAt(p.length - 1) !== 47) return p.slice(1);
  return p.replace(/^\/+/, '').replace(/\/+$/, '');
}

/**
 * Does `path` (relative to a bpffs instance root, with or without a leading '/') match
 * `glob`? A malformed glob throws a PinleakError naming it (check with globProblem first
 * where a different message is wanted).
 */
export function globMatch(glob: string, path: string): boolean {
  const c = compiled(glob);
  if (typeof c === 'string') throw new PinleakError(`bad glob "${glob}": ${c}`);
  return c.test(normalizePinPath(path));
}

/** Does a kernel object name start with `prefix`? Prefixes longer than the kernel keeps are cut to fit. */
export function nameHasPrefix(objectName: string, prefix: string): boolean {
  return prefix !== '' && objectName.startsWith(prefix.slice(0, KERNEL_NAME_LEN));
}

// ---------------------------------------------------------------------------------------
// Rules

const RULE_KEYS = new Set(['tool', 'persistent', 'paths', 'names', 'source']);

/**
 * Check one owner rule; returns the first problem as `<field> <what is wrong>` with `field`
 * the path given by the caller (for example `owners[3]`), or null when the rule is valid.
 */
export function ownerRuleProblem(v: unknown, field: string): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return `${field} must be an object`;
  const r = v as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!RULE_KEYS.has(k)) return `${field}.${k} is not a known key (expected ${[...RULE_KEYS].join(', ')})`;
  }
  if (typeof r.tool !== 'string' || r.tool.trim() === '') return `${field}.tool must be a non-empty string`;
  if (r.persistent !== undefined && typeof r.persistent !== 'boolean') return `${field}.persistent must be true or false (default false)`;
  if (r.source !== undefined && typeof r.source !== 'string') return `${field}.source must be a string`;
  for (const key of ['paths', 'names'] as const) {
    const list = r[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) return `${field}.${key} must be an array of strings`;
    for (let i = 0; i < list.length; i++) {
      const item: unknown = list[i];
      if (typeof item !== 'string') return `${field}.${key}[${i}] must be a string`;
      if (item === '') return `${field}.${key}[${i}] must not be empty (it would match every pin)`;
      if (key === 'paths') {
        const p = globProblem(item);
        if (p) return `${field}.${key}[${i}] is not a valid glob: ${p}`;
      }
    }
  }
  const count = (r.paths as unknown[] | undefined)?.length ?? 0;
  const named = (r.names as unknown[] | undefined)?.length ?? 0;
  if (count + named === 0) return `${field} needs at least one entry in paths or names`;
  return null;
}

/** A rule of its own (the catalog is handed out as copies: a caller may change its copy). */
export function copyRule(r: OwnerRule): OwnerRule {
  const out: OwnerRule = { tool: r.tool, persistent: r.persistent ?? false };
  if (r.paths) out.paths = [...r.paths];
  if (r.names) out.names = [...r.names];
  if (r.source !== undefined) out.source = r.source;
  return out;
}

let builtin: OwnerRule[] | null = null;

/** The shipped catalog, checked once: a bad entry is pinleak's bug (an internal error), not the user's. */
function readBuiltin(): OwnerRule[] {
  const doc = catalogFile as { owners?: unknown };
  if (!Array.isArray(doc.owners)) throw new Error('owners.json: "owners" must be an array');
  return doc.owners.map((r, i) => {
    const p = ownerRuleProblem(r, `owners[${i}]`);
    if (p) throw new Error(`owners.json: ${p}`);
    return r as OwnerRule;
  });
}

/** The built-in catalog, in file order (read once). */
export function builtinCatalog(): OwnerRule[] {
  builtin ??= readBuiltin();
  return builtin.map(copyRule);
}

/** The catalog to match against: the user's rules (from the config file) first, so they win. */
export function loadCatalog(extra: OwnerRule[] = []): OwnerRule[] {
  return [...extra.map(copyRule), ...builtinCatalog()];
}

/**
 * How specific a glob is, for choosing between rules that both match a pin: compared
 * field by field, larger wins. Literal characters first (`tc/globals/cilium_*` beats
 * `tc/globals/*`), then tokens and classes ({pid}, {n}, {sha1}, [a-z]: constrained, unlike
 * `*`), then fewer `**` (any depth), then fewer `*` and `?`.
 */
export function globSpecificity(glob: string): [number, number, number, number] {
  let literals = 0;
  let tokens = 0;
  let wild = 0;
  let globstars = 0;
  const comps = glob.replace(/^\/+/, '').split('/');
  comps.forEach((comp, ci) => {
    if (ci > 0) literals++; // the separator
    if (comp === '**') {
      globstars++;
      return;
    }
    for (let i = 0; i < comp.length; i++) {
      const c = comp[i]!;
      if (c === '\\') {
        literals++;
        i++;
      } else if (c === '*' || c === '?') {
        wild++;
      } else if (c === '{') {
        tokens++;
        i = Math.max(i, comp.indexOf('}', i));
      } else if (c === '[') {
        tokens++;
        const close = comp.indexOf(']', i + 2);
        i = close < 0 ? comp.length : close;
      } else {
        literals++;
      }
    }
  });
  return [literals, tokens, -globstars, -wild];
}

function moreSpecific(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return false;
}

interface CompiledGlob {
  glob: string;
  re: RegExp;
  specificity: [number, number, number, number];
}

const rulePathCache = new WeakMap<OwnerRule, { any: RegExp; globs: CompiledGlob[] } | null>();

/**
 * A rule's valid path globs: one regular expression to test a pin against every glob at
 * once (most pins match no rule), and each glob on its own with its specificity.
 */
function rulePaths(rule: OwnerRule): { any: RegExp; globs: CompiledGlob[] } | null {
  let c = rulePathCache.get(rule);
  if (c === undefined) {
    const globs = (rule.paths ?? []).flatMap((glob) => {
      const re = compiled(glob);
      return typeof re === 'string' ? [] : [{ glob, re, specificity: globSpecificity(glob) }];
    });
    c = globs.length
      ? { any: new RegExp(`^(?:${globs.map((g) => g.re.source.slice(1, -1)).join('|')})$`, 's'), globs }
      : null;
    rulePathCache.set(rule, c);
  }
  return c;
}

/**
 * The owner of a pin. Path globs first: of every rule's globs that match the pin's path,
 * the most specific wins (globSpecificity); between equally specific globs, the earlier
 * rule (the user's rules from the config file come before the built-in catalog). Only
 * when no path matches, object name prefixes: the longest matching prefix wins, then the
 * earlier rule. So a path match beats a name-prefix-only match.
 */
export function matchOwner(
  catalog: OwnerRule[],
  pinPath: string,
  objectName: string | null,
): OwnerMatch | null {
  return matchOwnerByPath(catalog, pinPath) ?? (objectName ? matchOwnerByName(catalog, objectName) : null);
}

/**
 * Path matches, per catalog: a scan asks for each pin's path twice (the pin's owner, its
 * object's owner) and a resident pinleak every scan again; the globs cost ~1 us a path.
 * Bounded: a flood of pins cannot grow it past MAX_CACHED_PATHS.
 */
const pathMatches = new WeakMap<OwnerRule[], Map<string, OwnerMatch | null>>();
const MAX_CACHED_PATHS = 200_000;

function matchOwnerByPath(catalog: OwnerRule[], pinPath: string): OwnerMatch | null {
  let cache = pathMatches.get(catalog);
  if (!cache) pathMatches.set(catalog, (cache = new Map()));
  const hit = cache.get(pinPath);
  if (hit !== undefined) return hit;
  const path = normalizePinPath(pinPath);
  let best: { rule: OwnerRule; glob: CompiledGlob } | null = null;
  const any = quickReject(catalog).paths;
  if (any?.test(path)) for (const rule of catalog) {
    const paths = rulePaths(rule);
    if (!paths?.any.test(path)) continue;
    for (const g of paths.globs) {
      if (g.re.test(path) && (!best || moreSpecific(g.specificity, best.glob.specificity))) best = { rule, glob: g };
    }
  }
  const m = best ? { tool: best.rule.tool, persistent: best.rule.persistent, rule: best.rule, matched: `rule ${best.glob.glob}` } : null;
  if (cache.size >= MAX_CACHED_PATHS) cache.clear();
  cache.set(pinPath, m);
  return m;
}

/**
 * Per catalog, every rule's path globs in one expression and every name prefix in another:
 * most pins and objects belong to no known tool, and each is then told so in one test
 * instead of one per rule (null: the catalog has no glob, or no prefix, so nothing matches).
 */
const rejects = new WeakMap<OwnerRule[], { paths: RegExp | null; names: RegExp | null }>();
function quickReject(catalog: OwnerRule[]): { paths: RegExp | null; names: RegExp | null } {
  let r = rejects.get(catalog);
  if (!r) {
    const globs = catalog.flatMap((rule) => rulePaths(rule)?.globs ?? []).map((g) => g.re.source.slice(1, -1));
    const prefixes = catalog.flatMap((rule) => rule.names ?? []).filter((p) => p !== '')
      .map((p) => p.slice(0, KERNEL_NAME_LEN).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));
    r = {
      paths: globs.length ? new RegExp(`^(?:${globs.join('|')})$`, 's') : null,
      names: prefixes.length ? new RegExp(`^(?:${prefixes.join('|')})`, 's') : null,
    };
    rejects.set(catalog, r);
  }
  return r;
}

/** The owner of an object from its name alone: the longest matching prefix wins, then the earlier rule. */
export function matchOwnerByName(catalog: OwnerRule[], objectName: string): OwnerMatch | null {
  if (!quickReject(catalog).names?.test(objectName)) return null;
  let byName: { rule: OwnerRule; prefix: string } | null = null;
  for (const rule of catalog) {
    for (const prefix of rule.names ?? []) {
      const cut = prefix.slice(0, KERNEL_NAME_LEN);
      if (nameHasPrefix(objectName, prefix) && (!byName || cut.length > byName.prefix.length)) byName = { rule, prefix: cut };
    }
  }
  if (byName) return { tool: byName.rule.tool, persistent: byName.rule.persistent, rule: byName.rule, matched: `name prefix ${byName.prefix}` };
  return null;
}

/**
 * The pid in an OpenTelemetry Go style path `<pid>/...` (SPEC section 2: "the first path
 * component made only of digits"): the first directory component that is all digits, so
 * `<pid>/alloc_map` and `otel/<pid>/events` both name their pid. Written as a pid is printed
 * (no leading zero, so '0123' is not one); the pin's own name never counts (a pin named
 * '1234' is not this layout); and 0 < pid < pidMax, where pidMax is
 * /proc/sys/kernel/pid_max (the kernel hands out pids below that value). Else null.
 */
export function pathPid(pinPath: string, pidMax: number): number | null {
  const comps = normalizePinPath(pinPath).split('/');
  // (a loop, not find() with a regex: this runs twice for every pin of every scan)
  for (let i = 0; i < comps.length - 1; i++) {
    const c = comps[i]!;
    if (!ALL_DIGITS.test(c)) continue;
    if (c.charCodeAt(0) === 48 || c.length > 10) return null; // '0123': not how a pid is printed
    const pid = Number(c);
    return pid < pidMax ? pid : null;
  }
  return null;
}
const ALL_DIGITS = /^[0-9]+$/;
