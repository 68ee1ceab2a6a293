// Raw BTF built byte by byte from the format (include/uapi/linux/btf.h): fixtures for the
// reader's unit tests (expectations derived independently of it) and the BTF object a
// struct_ops map needs.
/** Little-endian BTF builder: types are added in order, ids start at 1. */
export function buildBtf(add: (t: Builder) => void, opts: { magic?: number; truncate?: number } = {}): Buffer {
  const b = new Builder();
  add(b);
  const types = Buffer.concat(b.types);
  const strs = Buffer.from(b.strings, 'latin1');
  const hdr = Buffer.alloc(24);
  hdr.writeUInt16LE(opts.magic ?? 0xeb9f, 0);
  hdr[2] = 1; // version
  hdr.writeUInt32LE(24, 4); // hdr_len
  hdr.writeUInt32LE(0, 8); // type_off
  hdr.writeUInt32LE(types.length, 12);
  hdr.writeUInt32LE(types.length, 16); // str_off
  hdr.writeUInt32LE(strs.length, 20);
  const all = Buffer.concat([hdr, types, strs]);
  return opts.truncate ? all.subarray(0, all.length - opts.truncate) : all;
}

export class Builder {
  types: Buffer[] = [];
  strings = '\0';
  private next = 1;

  str(s: string): number {
    if (!s) return 0;
    const off = this.strings.length;
    this.strings += s + '\0';
    return off;
  }

  private type(name: string, kind: number, vlen: number, sizeOrType: number, trailer: number[] = [], kindFlag = false): number {
    const b = Buffer.alloc(12 + 4 * trailer.length);
    b.writeUInt32LE(this.str(name), 0);
    b.writeUInt32LE(((kindFlag ? 1 : 0) << 31 | kind << 24 | vlen) >>> 0, 4);
    b.writeUInt32LE(sizeOrType, 8);
    trailer.forEach((w, i) => b.writeUInt32LE(w >>> 0, 12 + 4 * i));
    this.types.push(b);
    return this.next++;
  }

  int(name: string, size: number): number { return this.type(name, 1, 0, size, [size * 8]); }
  ptr(to: number): number { return this.type('', 2, 0, to); }
  array(elem: number, index: number, n: number): number { return this.type('', 3, 0, 0, [elem, index, n]); }
  struct(name: string, size: number, members: [string, number, number][], opts: { union?: boolean; kindFlag?: boolean } = {}): number {
    const trailer = members.flatMap(([n, t, off]) => [this.str(n), t, off]);
    return this.type(name, opts.union ? 5 : 4, members.length, size, trailer, opts.kindFlag);
  }
  enum(name: string, values: [string, number][]): number {
    return this.type(name, 6, values.length, 4, values.flatMap(([n, v]) => [this.str(n), v]));
  }
  enum64(name: string, values: [string, bigint][]): number {
    return this.type(name, 19, values.length, 8, values.flatMap(([n, v]) => [this.str(n), Number(v & 0xffffffffn), Number(v >> 32n)]));
  }
  typedef(name: string, to: number): number { return this.type(name, 8, 0, to); }
  const(to: number): number { return this.type('', 10, 0, to); }
  volatile(to: number): number { return this.type('', 9, 0, to); }
  funcProto(ret: number, params: number[]): number { return this.type('', 13, params.length, ret, params.flatMap((p) => [0, p])); }
  func(name: string, proto: number): number { return this.type(name, 12, 1, proto); }
}
