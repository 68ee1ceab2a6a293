import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyConfig, loadConfig, matchIgnore, parseConfig, parseDuration } from '../../src/analysis/config.js';
import { loadCatalog, matchOwner } from '../../src/analysis/owners.js';
import { PinleakError } from '../../src/errors.js';

const F = '/etc/pinleak/config.json';

function parseError(text: string): string {
  try {
    parseConfig(text, F);
  } catch (e) {
    expect(e).toBeInstanceOf(PinleakError);
    return (e as Error).message;
  }
  throw new Error('expected parseConfig to throw');
}

describe('parseDuration', () => {
  it('accepts s, m, h, d, w', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('15m')).toBe(900_000);
    expect(parseDuration('12h')).toBe(43_200_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('2w')).toBe(1_209_600_000);
    expect(parseDuration('0d')).toBe(0);
    expect(parseDuration(' 30d ')).toBe(2_592_000_000);
  });

  it('refuses anything else, naming the value', () => {
    for (const bad of ['', '30', 'd', '1.5h', '-1d', '1y', '1h30m', '30 d', '99999999999999999999w']) {
      expect(() => parseDuration(bad), bad).toThrow(PinleakError);
    }
    expect(() => parseDuration('1y')).toThrow(/bad duration "1y"/);
  });
});

describe('parseConfig', () => {
  it('an empty object is an empty config', () => {
    expect(parseConfig('{}', F)).toEqual({});
    expect(emptyConfig()).toEqual({});
  });

  it('reads a full config', () => {
    const c = parseConfig(
      JSON.stringify({
        owners: [{ tool: 'myagent', persistent: true, paths: ['myagent/**'], names: ['ma_'] }],
        ignore: [
          { path: '/app/**', reason: 'the app keeps these' },
          { name: 'keep_', instance: '0:39' },
        ],
        retention: { keep: 50, olderThan: '30d' },
      }),
      F,
    );
    expect(c.owners).toEqual([{ tool: 'myagent', persistent: true, paths: ['myagent/**'], names: ['ma_'], source: `config ${F}` }]);
    expect(c.ignore).toEqual([{ path: '/app/**', reason: 'the app keeps these' }, { name: 'keep_', instance: '0:39' }]);
    expect(c.retention).toEqual({ keep: 50, olderThan: '30d' });
  });

  it('keeps a source the user gave', () => {
    const c = parseConfig('{"owners":[{"tool":"t","persistent":false,"names":["t_"],"source":"our wiki"}]}', F);
    expect(c.owners![0]!.source).toBe('our wiki');
  });

  it('an owner without persistent is not persistent (every key is optional, as the README says)', () => {
    expect(parseConfig('{"owners":[{"tool":"t","paths":["t/**"]}]}', F).owners).toEqual([{ tool: 't', persistent: false, paths: ['t/**'], source: `config ${F}` }]);
  });

  it('accepts a UTF-8 byte order mark', () => {
    expect(parseConfig('\uFEFF{"ignore":[]}', F)).toEqual({ ignore: [] });
  });

  it('names the file and the field on every error', () => {
    const cases: [unknown, string][] = [
      [[], 'must be a JSON object'],
      [{ colour: 1 }, 'colour is not a known key (expected owners, ignore, retention)'],
      [{ owners: {} }, 'owners must be an array'],
      [{ owners: [{ tool: 'x', persistent: true }] }, 'owners[0] needs at least one entry in paths or names'],
      [{ owners: [{ tool: 'x', persistent: 1, names: ['a'] }] }, 'owners[0].persistent must be true or false (default false)'],
      [{ owners: [{ tool: 'x', persistent: true, paths: [7] }] }, 'owners[0].paths[0] must be a string'],
      [{ owners: [{ tool: 'x', persistent: true, paths: ['a//b'] }] }, 'owners[0].paths[0] is not a valid glob'],
      [{ owners: [{ tool: 'x', persistent: true, names: ['a'], prio: 1 }] }, 'owners[0].prio is not a known key'],
      [{ ignore: 'x' }, 'ignore must be an array'],
      [{ ignore: [{ path: 'a' }, { path: 'b' }, { path: 3 }] }, 'ignore[2].path must be a string'],
      [{ ignore: [{ reason: 'why' }] }, 'ignore[0] needs at least one of path, name, instance'],
      [{ ignore: [{ path: '{a,b}' }] }, 'ignore[0].path is not a valid glob'],
      [{ ignore: [{ name: '' }] }, 'ignore[0].name must not be empty'],
      [{ ignore: [{ instance: 'sda1' }] }, 'ignore[0].instance must be a device number MAJ:MIN'],
      [{ ignore: [{ path: 'a', pth: 'b' }] }, 'ignore[0].pth is not a known key (expected path, name, instance, reason)'],
      [{ ignore: [null] }, 'ignore[0] must be an object'],
      [{ retention: [] }, 'retention must be an object'],
      [{ retention: { keep: -1 } }, 'retention.keep must be a whole number'],
      [{ retention: { keep: 1.5 } }, 'retention.keep must be a whole number'],
      [{ retention: { keep: '5' } }, 'retention.keep must be a whole number'],
      [{ retention: { olderThan: 30 } }, 'retention.olderThan must be a string'],
      [{ retention: { olderThan: '30 days' } }, 'retention.olderThan must be a whole number followed by s, m, h, d or w'],
      [{ retention: { max: 1 } }, 'retention.max is not a known key (expected keep, olderThan)'],
    ];
    for (const [doc, want] of cases) {
      const msg = parseError(JSON.stringify(doc));
      expect(msg.startsWith(`config ${F}: `), msg).toBe(true);
      expect(msg).toContain(want);
    }
    expect(parseError('{"ignore":[{"name":"a"},{"instance":"0:1"},{"path":1}]}')).toBe(`config ${F}: ignore[2].path must be a string`);
  });

  it('reports invalid JSON with a line and column', () => {
    expect(parseError('{\n  "ignore": [\n    { "path": "a" },\n  ]\n}')).toBe(
      `config ${F}: not valid JSON (Unexpected token ']' at line 4 column 3)`,
    );
    expect(parseError('{\n  "owners": []\n  "ignore": []\n}')).toMatch(
      /^config \/etc\/pinleak\/config\.json: not valid JSON \(.* at line 3 column 3\)$/,
    );
    expect(parseError('{"a": ')).toMatch(/not valid JSON \(Unexpected end of JSON input at line 1 column 7\)$/);
    expect(parseError('')).toMatch(/not valid JSON \(Unexpected end of JSON input at line 1 column 1\)$/);
    expect(parseError('{} x')).toMatch(/not valid JSON \(.* at line 1 column 4\)$/);
    expect(parseError('{"a": "b\nc"}')).toMatch(/not valid JSON \(.* at line 1 column 9\)$/);
    expect(parseError('// comment\n{}')).toMatch(/not valid JSON \(.* at line 1 column 1\)$/);
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pinleak-config-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('an explicit path that is missing is an error naming it', () => {
    const p = join(dir, 'nope.json');
    expect(() => loadConfig(p)).toThrow(PinleakError);
    expect(() => loadConfig(p)).toThrow(`config ${p}: no such file`);
  });

  it('a missing default file is an empty config', () => {
    expect(loadConfig(undefined, join(dir, 'absent.json'))).toEqual({});
  });

  it('reads the default file when present, and an explicit one', () => {
    const p = join(dir, 'config.json');
    writeFileSync(p, '{"retention":{"keep":3}}');
    expect(loadConfig(undefined, p)).toEqual({ retention: { keep: 3 } });
    expect(loadConfig(p, join(dir, 'other.json'))).toEqual({ retention: { keep: 3 } });
  });

  it('errors in the file name the file', () => {
    const p = join(dir, 'bad.json');
    writeFileSync(p, '{"ignore":[{"path":1}]}');
    expect(() => loadConfig(p)).toThrow(`config ${p}: ignore[0].path must be a string`);
    expect(() => loadConfig(undefined, p)).toThrow(`config ${p}: ignore[0].path must be a string`);
  });

  it('a directory is an error even as the default', () => {
    const d = join(dir, 'adir');
    mkdirSync(d);
    expect(() => loadConfig(undefined, d)).toThrow(`config ${d}: is a directory`);
  });
});

describe('matchIgnore', () => {
  const config = parseConfig(
    JSON.stringify({
      ignore: [
        { path: 'app/**', reason: 'app' },
        { name: 'keep_', instance: '0:39', reason: 'keepers on 0:39' },
        { instance: '0:50', reason: 'the whole test instance' },
        { path: 'x/*', name: 'xm_', reason: 'both' },
      ],
    }),
    F,
  );
  const pin = (instance: string, path: string, objectName: string | null) => ({ instance, path, objectName });

  it('matches on a path glob, with or without the leading /', () => {
    expect(matchIgnore(config, pin('0:30', '/app/a/b', 'm'))?.reason).toBe('app');
    expect(matchIgnore(config, pin('0:30', 'app/a', null))?.reason).toBe('app');
    expect(matchIgnore(config, pin('0:30', '/apps/a', 'm'))).toBeNull();
  });

  it('needs every given field to match', () => {
    expect(matchIgnore(config, pin('0:39', '/k', 'keep_this'))?.reason).toBe('keepers on 0:39');
    expect(matchIgnore(config, pin('0:40', '/k', 'keep_this'))).toBeNull();
    expect(matchIgnore(config, pin('0:39', '/k', 'other'))).toBeNull();
    expect(matchIgnore(config, pin('0:39', '/k', null))).toBeNull();
    expect(matchIgnore(config, pin('0:30', '/x/1', 'xm_map'))?.reason).toBe('both');
    expect(matchIgnore(config, pin('0:30', '/x/1', 'ym_map'))).toBeNull();
    expect(matchIgnore(config, pin('0:30', '/x/1/2', 'xm_map'))).toBeNull();
  });

  it('matches a whole instance', () => {
    expect(matchIgnore(config, pin('0:50', '/anything', null))?.reason).toBe('the whole test instance');
  });

  it('returns the first matching rule, and null without rules', () => {
    expect(matchIgnore(config, pin('0:50', '/app/z', null))?.reason).toBe('app');
    expect(matchIgnore({}, pin('0:50', '/app/z', null))).toBeNull();
    expect(matchIgnore(emptyConfig(), pin('0:50', '/app/z', null))).toBeNull();
  });
});

describe('config owners feed the catalog', () => {
  it('a user rule wins over the built-in one', () => {
    const c = parseConfig('{"owners":[{"tool":"our-cni","persistent":false,"paths":["tc/globals/cali_ours_*"]}]}', F);
    const cat = loadCatalog(c.owners ?? []);
    expect(matchOwner(cat, '/tc/globals/cali_ours_1', null)).toMatchObject({ tool: 'our-cni', persistent: false });
    expect(matchOwner(cat, '/tc/globals/cali_v4_ct3', null)?.tool).toBe('calico');
  });
});
