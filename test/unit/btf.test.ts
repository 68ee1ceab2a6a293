// The BTF reader on a tiny BTF file built by hand here, byte by byte from the format
// (include/uapi/linux/btf.h), so every expectation is derived independently of the reader.
import { describe, expect, it } from 'vitest';
import { Btf, BtfError, programFuncsBtf } from '../../src/kernel/btf.js';
import { buildBtf } from '../world/btf-builder.js';

// struct inner { long counter; };                          (like atomic64_t)
// struct aux { u32 pad; u32 id; struct inner refcnt; };
// struct obj { u32 id; union { struct aux *aux; }; const volatile struct inner refcnt;
//              u32 (*cb)(int); char name[16]; u32 flags:3, mode:5; };
const ids: Record<string, number> = {};
const fixture = buildBtf((b) => {
  ids.u32 = b.int('u32', 4);
  ids.long = b.int('long', 8);
  ids.char = b.int('char', 1);
  ids.inner = b.struct('inner', 8, [['counter', ids.long, 0]]);
  ids.aux = b.struct('aux', 16, [['pad', ids.u32, 0], ['id', ids.u32, 32], ['refcnt', ids.inner, 64]]);
  ids.auxPtr = b.ptr(ids.aux);
  ids.anonUnion = b.struct('', 8, [['aux', ids.auxPtr, 0]], { union: true });
  ids.cvInner = b.const(b.volatile(ids.inner));
  ids.proto = b.funcProto(ids.u32, [ids.u32]);
  ids.cbPtr = b.ptr(ids.proto);
  ids.name = b.array(ids.char, ids.u32, 16);
  ids.bits = b.struct('bits', 4, [['flags', ids.u32, 3 << 24 | 0], ['mode', ids.u32, 5 << 24 | 3]], { kindFlag: true });
  ids.obj = b.struct('obj', 56, [
    ['id', ids.u32, 0], ['', ids.anonUnion, 64], ['refcnt', ids.cvInner, 128], ['cb', ids.cbPtr, 192],
    ['name', ids.name, 256], ['b', ids.bits, 384],
  ]);
  ids.objT = b.typedef('obj_t', ids.obj);
  ids.objTT = b.typedef('obj_tt', ids.objT);
  ids.state = b.enum('state', [['S_INIT', 0], ['S_INUSE', 1], ['S_NEG', -2]]);
  ids.big = b.enum64('big', [['B_HIGH', 0x1_0000_0002n]]);
  ids.fn = b.func('do_thing', ids.proto);
  ids.sameName = b.struct('obj', 4, [['x', ids.u32, 0]]); // a second "obj": the first one wins
});

describe('BTF reader', () => {
  const btf = new Btf(fixture);

  it('indexes every type, void included', () => {
    expect(btf.typeCount).toBe(ids.sameName + 1);
    expect(btf.kind(0)).toBe('void');
  });

  it('finds types by kind and name; the first of a name wins', () => {
    expect(btf.find('struct', 'obj')).toBe(ids.obj);
    expect(btf.find('typedef', 'obj_t')).toBe(ids.objT);
    expect(btf.find('func', 'do_thing')).toBe(ids.fn);
    expect(btf.tryFind('struct', 'do_thing')).toBeNull();
    expect(btf.tryFind('union', 'nope')).toBeNull();
    expect(() => btf.find('struct', 'nope')).toThrow(BtfError);
    expect(() => btf.find('struct', 'nope')).toThrow('BTF: no struct nope');
  });

  it('resolves typedef, const and volatile chains', () => {
    expect(btf.resolve(ids.objTT)).toBe(ids.obj);
    expect(btf.resolve(ids.cvInner)).toBe(ids.inner);
    expect(btf.resolve(ids.u32)).toBe(ids.u32);
    expect(btf.name(ids.objTT)).toBe('obj_tt');
  });

  it('gives sizes of structs, ints, pointers and arrays', () => {
    expect(btf.size(ids.objTT)).toBe(56);
    expect(btf.size(ids.auxPtr)).toBe(8);
    expect(btf.size(ids.name)).toBe(16);
    expect(btf.size(ids.cvInner)).toBe(8);
    expect(() => btf.size(ids.fn)).toThrow(BtfError);
  });

  it('enumerates members with bit offsets, resolved types and function pointers', () => {
    const m = btf.members(ids.objT);
    expect(m.map((x) => x.name)).toEqual(['id', '', 'refcnt', 'cb', 'name', 'b']);
    expect(m[2]).toMatchObject({ bitOffset: 128, typeId: ids.cvInner, resolvedId: ids.inner, isFuncPtr: false });
    expect(m[3]).toMatchObject({ name: 'cb', bitOffset: 192, isFuncPtr: true });
    expect(m[1]!.isFuncPtr).toBe(false); // a union holding a pointer to a struct
    expect(() => btf.members(ids.u32)).toThrow(BtfError);
  });

  it('decodes bitfield members of a kind_flag struct', () => {
    expect(btf.members(ids.bits)).toEqual([
      expect.objectContaining({ name: 'flags', bitOffset: 0, bitSize: 3 }),
      expect.objectContaining({ name: 'mode', bitOffset: 3, bitSize: 5 }),
    ]);
    expect(() => btf.field(ids.obj, 'b.mode')).toThrow('bitfield');
  });

  it('finds fields by dotted path, through anonymous unions and modifiers', () => {
    expect(btf.field(ids.obj, 'id')).toEqual({ offset: 0, size: 4, typeId: ids.u32 });
    expect(btf.field(ids.obj, 'aux')).toEqual({ offset: 8, size: 8, typeId: ids.auxPtr });
    expect(btf.field(ids.obj, 'refcnt.counter')).toEqual({ offset: 16, size: 8, typeId: ids.long });
    expect(btf.field(ids.objTT, 'name')).toEqual({ offset: 32, size: 16, typeId: ids.name });
    expect(() => btf.field(ids.obj, 'refcnt.nope')).toThrow('has no member nope (in refcnt.nope)');
    // a pointer is not crossed by field()
    expect(() => btf.field(ids.obj, 'aux.id')).toThrow(BtfError);
  });

  it('splits a path that crosses pointers into loads', () => {
    expect(btf.loadPath(ids.obj, 'aux.id')).toEqual({ offsets: [8, 4], size: 4, typeId: ids.u32 });
    expect(btf.loadPath(ids.obj, 'aux.refcnt.counter')).toEqual({ offsets: [8, 8], size: 8, typeId: ids.long });
    expect(btf.loadPath(ids.obj, 'refcnt.counter')).toEqual({ offsets: [16], size: 8, typeId: ids.long });
    expect(btf.loadPath(ids.obj, 'aux')).toEqual({ offsets: [8], size: 8, typeId: ids.auxPtr });
  });

  it('reads pointees and arrays', () => {
    expect(btf.pointee(ids.auxPtr)).toBe(ids.aux);
    expect(btf.pointee(ids.u32)).toBeNull();
    expect(btf.array(ids.name)).toEqual({ elemId: ids.char, count: 16 });
  });

  it('reads enum and enum64 values', () => {
    expect(btf.enumValue('state', 'S_INUSE')).toBe(1);
    expect(btf.enumValue('state', 'S_NEG')).toBe(-2);
    expect(btf.enumValue('big', 'B_HIGH')).toBe(0x1_0000_0002);
    expect(btf.enumerators('state')).toEqual([{ name: 'S_INIT', value: 0 }, { name: 'S_INUSE', value: 1 }, { name: 'S_NEG', value: -2 }]);
    expect(() => btf.enumValue('state', 'S_NONE')).toThrow('enum state has no S_NONE');
    expect(() => btf.enumValue('nope', 'X')).toThrow('no enum nope');
  });

  it('rejects what is not BTF, or is cut short', () => {
    expect(() => new Btf(buildBtf(() => {}, { magic: 0x1234 }))).toThrow('bad magic');
    expect(() => new Btf(Buffer.alloc(10))).toThrow('too short');
    // cutting the string section leaves the header pointing past the end
    expect(() => new Btf(buildBtf((b) => { b.int('int', 4); }, { truncate: 2 }))).toThrow('beyond the end');
    expect(() => btf.kind(9999)).toThrow('no type id 9999');
  });

  it('rejects a type section whose last type is cut in half', () => {
    const good = buildBtf((b) => { b.struct('s', 4, [['a', 0, 0]]); });
    const bad = Buffer.from(good);
    bad.writeUInt32LE(good.readUInt32LE(12) - 4, 12); // type_len 4 bytes short of the member
    expect(() => new Btf(bad)).toThrow('truncated type section');
  });
});

describe('programFuncsBtf', () => {
  it('names the program and each callback as static functions the reader finds back', () => {
    const { btf, typeIds } = programFuncsBtf('pinleak_main', ['map_use', 'other']);
    const b = new Btf(btf);
    expect(typeIds).toEqual([b.find('func', 'pinleak_main'), b.find('func', 'map_use'), b.find('func', 'other')]);
    expect(b.kind(b.find('func', 'map_use'))).toBe('func');
    expect(b.typeCount).toBe(8); // void, long, void *, two protos, three functions
  });
});
