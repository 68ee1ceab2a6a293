// The rtnetlink parsers on dumps captured from this kernel (test/unit/netlink-fixtures:
// one message per line, hex), built as: netns with veth plv0/plv1; plv0 clsact with a
// direct-action cls_bpf ingress filter (prog 109) and XDP in driver mode (prog 110);
// plv1 htb 1: with class 1:10, a cls_bpf filter at 1: pref 3 (prog 109), XDP generic (prog 110);
// and, in another netns, two mirred actions (index 7 and 9).
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  parseMessages, parseAttrs, attrList, parseLink, parseTc, parseClsBpf, parseActions, encodeAttr, message,
  linkDumpRequest, qdiscDumpRequest, actionDumpRequest,
} from '../../src/kernel/netlink.js';
import { RtmType } from '../../src/kernel/abi.js';

const fixture = (name: string) =>
  Buffer.from(fs.readFileSync(new URL(`./netlink-fixtures/${name}.hex`, import.meta.url), 'utf8').replace(/\s/g, ''), 'hex');

describe('rtnetlink parsers on captured dumps', () => {
  it('devices with their XDP programs per mode', () => {
    const msgs = parseMessages(fixture('links'));
    expect(msgs.map((m) => m.type)).toEqual([RtmType.NEWLINK, RtmType.NEWLINK, RtmType.NEWLINK]);
    expect(msgs.map((m) => parseLink(m.payload))).toEqual([
      { ifindex: 1, ifname: 'lo', kind: null, xdp: [] },
      { ifindex: 2, ifname: 'plv1', kind: 'veth', xdp: [{ mode: 'generic', progId: 110 }] },
      { ifindex: 3, ifname: 'plv0', kind: 'veth', xdp: [{ mode: 'driver', progId: 110 }] },
    ]);
  });

  it('qdiscs (the invisible default ones too) and classes', () => {
    const q = parseMessages(fixture('qdiscs')).map((m) => parseTc(m.payload));
    expect(q.map((e) => [e.ifindex, e.kind, e.handle.toString(16), e.parent.toString(16)])).toEqual([
      [2, 'htb', '10000', 'ffffffff'],
      [2, 'pfifo', '0', '10010'],
      [3, 'noqueue', '0', 'ffffffff'],
      [3, 'clsact', 'ffff0000', 'fffffff1'],
    ]);
    const c = parseMessages(fixture('classes')).map((m) => parseTc(m.payload));
    expect(c.map((e) => [e.ifindex, e.kind, e.handle.toString(16)])).toEqual([[2, 'htb', '10010']]);
  });

  it('an action dump (two mirred actions: this kernel has no act_bpf) answers as RTM_GETACTION with a table of entries', () => {
    const msgs = parseMessages(fixture('actions-mirred'));
    expect(msgs.map((m) => m.type)).toEqual([RtmType.GETACTION]);
    const tab = parseAttrs(msgs[0]!.payload, 4).get(1)!;
    expect(attrList(tab).map(([, e]) => parseAttrs(e).get(1)!.toString('latin1'))).toEqual(['mirred\0', 'mirred\0']);
    expect(parseActions(msgs[0]!.payload)).toEqual([]);
  });

  it('cls_bpf filters: program id, name, direct-action, priority; chain heads carry no program', () => {
    const ingress = parseMessages(fixture('filters-clsact-ingress')).map((m) => parseTc(m.payload));
    expect(ingress).toHaveLength(2);
    expect(ingress[0]!.options).toBeNull(); // the chain/priority head
    expect(ingress[1]!.info >>> 16).toBe(49152);
    expect(ingress[1]!.chain).toBe(0);
    expect(parseClsBpf(ingress[1]!.options!)).toEqual({ progId: 109, name: 'cls:[*fsobj]', directAction: true });
    const htb = parseMessages(fixture('filters-htb')).map((m) => parseTc(m.payload));
    expect(htb[1]!.info >>> 16).toBe(3);
    expect(htb[1]!.parent).toBe(0x10000);
    expect(parseClsBpf(htb[1]!.options!)).toEqual({ progId: 109, name: 'cls:[*fsobj]', directAction: false });
  });
});

describe('rtnetlink parsers on hostile input', () => {
  const links = fixture('links');

  it('a message longer than the datagram is refused, not read past its end', () => {
    expect(() => parseMessages(links.subarray(0, links.length - 1))).toThrow(/malformed netlink message/);
    const bad = Buffer.from(links);
    bad.writeUInt32LE(8, 0); // shorter than a header
    expect(() => parseMessages(bad)).toThrow(/malformed netlink message: length 8/);
  });

  it('an attribute that claims more than its message holds, or less than its header, is refused', () => {
    const a = encodeAttr(3, Buffer.from('eth0\0'));
    const over = Buffer.from(a);
    over.writeUInt16LE(200, 0);
    expect(() => parseAttrs(over)).toThrow(/malformed netlink attribute: length 200/);
    const under = Buffer.from(a);
    under.writeUInt16LE(2, 0);
    expect(() => parseAttrs(under)).toThrow(/malformed netlink attribute: length 2/);
    const payload = parseMessages(links)[1]!.payload;
    expect(() => parseLink(payload.subarray(0, 10))).toThrow(/malformed ifinfomsg/);
  });

  it('a name without its NUL is cut at its attribute, and capped', () => {
    const long = Buffer.alloc(1000, 0x41);
    const msg = Buffer.concat([Buffer.alloc(16), encodeAttr(3, long)]);
    msg.writeInt32LE(7, 4);
    expect(parseLink(msg).ifname).toBe('A'.repeat(256));
  });
});

describe('rtnetlink requests', () => {
  it('are well-formed messages whose attributes parse back', () => {
    for (const req of [linkDumpRequest(), qdiscDumpRequest(), actionDumpRequest('bpf')]) {
      const [m] = parseMessages(message(req.type, 0x301, 9, req.body));
      expect(m!.type).toBe(req.type);
      expect(m!.seq).toBe(9);
    }
  });

  it('act_bpf actions (this kernel has no act_bpf: a message built to the uapi layout)', () => {
    const u32 = (v: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(v);
      return b;
    };
    const bpfAction = (index: number, progId: number) => Buffer.concat([
      encodeAttr(1, Buffer.from('bpf\0')),
      encodeAttr(2 | 0x8000, Buffer.concat([encodeAttr(2, Buffer.concat([u32(index), Buffer.alloc(16)])), encodeAttr(6, Buffer.from('act\0')), encodeAttr(9, u32(progId))])),
      encodeAttr(3, u32(index)),
    ]);
    const other = Buffer.concat([encodeAttr(1, Buffer.from('mirred\0')), encodeAttr(3, u32(1))]);
    const tab = encodeAttr(1 | 0x8000, Buffer.concat([encodeAttr(1, bpfAction(4, 77)), encodeAttr(2, other), encodeAttr(3, bpfAction(5, 78))]));
    expect(parseActions(Buffer.concat([Buffer.alloc(4), tab]))).toEqual([
      { index: 4, progId: 77, name: 'act' },
      { index: 5, progId: 78, name: 'act' },
    ]);
  });
});
