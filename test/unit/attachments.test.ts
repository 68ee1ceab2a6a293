import { describe, expect, it } from 'vitest';
import { attachmentRefs, tcHandle, type NetnsAttachments } from '../../src/analysis/attachments.js';

const NS = 4026532301;
const empty = (over: Partial<NetnsAttachments> = {}): NetnsAttachments => ({
  ino: NS, tc: [], xdp: [], mprog: [], netns: [], actions: [], incomplete: null, ...over,
});

describe('network attachments as kernel references', () => {
  it('names each tc filter by where it hangs, with the counts measured on this kernel', () => {
    const refs = attachmentRefs([empty({
      tc: [
        { ifindex: 3, ifname: 'veth0', parent: { kind: 'ingress' }, pref: 49152, chain: 0, progId: 90 },
        { ifindex: 3, ifname: 'veth0', parent: { kind: 'egress' }, pref: 1, chain: 2, progId: 90 },
        { ifindex: 4, ifname: 'veth1', parent: { kind: 'class', handle: 0x10010, qdisc: 'htb' }, pref: 3, chain: 0, progId: 91 },
        { ifindex: 5, ifname: 'veth2', parent: { kind: 'ingress' }, pref: 4, chain: 0, progId: 92, block: 22 },
      ],
    })], [], new Map());
    expect(refs).toEqual([
      { to: { kind: 'prog', id: 90 }, from: { kind: 'tc', id: 3 }, what: `tc ingress of veth0 in netns ${NS} (filter pref 49152, cls_bpf)`, count: 1 },
      { to: { kind: 'prog', id: 90 }, from: { kind: 'tc', id: 3 }, what: `tc egress of veth0 in netns ${NS} (filter pref 1 chain 2, cls_bpf)`, count: 1 },
      { to: { kind: 'prog', id: 91 }, from: { kind: 'tc', id: 4 }, what: `tc class 1:10 (htb) of veth1 in netns ${NS} (filter pref 3, cls_bpf)`, count: 1 },
      { to: { kind: 'prog', id: 92 }, from: { kind: 'tc', id: 5 }, what: `tc ingress of veth2 in netns ${NS} (filter pref 4, cls_bpf, shared block 22)`, count: 1 },
    ]);
  });

  it('XDP by netlink counts 2 per device and 1 per program for the dispatcher; behind an XDP link on that device it is the link\'s reference', () => {
    const ns = empty({
      xdp: [
        { ifindex: 2, ifname: 'dum0', mode: 'generic', progId: 50 },
        { ifindex: 5, ifname: 'veth9', mode: 'driver', progId: 51 },
        { ifindex: 6, ifname: 'veth8', mode: 'driver', progId: 50 },
        { ifindex: 7, ifname: 'nic0', mode: 'offload', progId: 52 },
      ],
    });
    expect(attachmentRefs([ns], [], new Map())).toEqual([
      { to: { kind: 'prog', id: 50 }, from: { kind: 'xdp', id: 2 }, what: `XDP (generic) on dum0 in netns ${NS}`, count: 3 },
      { to: { kind: 'prog', id: 51 }, from: { kind: 'xdp', id: 5 }, what: `XDP (driver) on veth9 in netns ${NS}`, count: 3 },
      { to: { kind: 'prog', id: 50 }, from: { kind: 'xdp', id: 6 }, what: `XDP (driver) on veth8 in netns ${NS}`, count: 2 },
      { to: { kind: 'prog', id: 52 }, from: { kind: 'xdp', id: 7 }, what: `XDP (offload) on nic0 in netns ${NS}`, count: null },
    ]);
    // a link on dum0: that attachment is the link's, and so is the dispatcher's reference
    const link = { type: 'xdp', progId: 50, defunct: false, targetId: 2 };
    expect(attachmentRefs([ns], [link].values(), new Map()).map((r) => [r.from.id, r.count])).toEqual([[5, 3], [6, 2], [7, null]]);
    // the same program on another device than the link's is still named
    expect(attachmentRefs([ns], [{ ...link, targetId: 9 }], new Map()).map((r) => [r.from.id, r.count])).toEqual([[2, 2], [5, 3], [6, 2], [7, null]]);
  });

  it('tcx and netkit entries without a link are named; entries with a link are the link\'s', () => {
    const refs = attachmentRefs([empty({
      mprog: [
        { ifindex: 3, ifname: 'veth0', point: 'tcx ingress', progId: 60, linkId: 0 },
        { ifindex: 3, ifname: 'veth0', point: 'tcx ingress', progId: 61, linkId: 700 },
        { ifindex: 8, ifname: 'nk0', point: 'netkit peer', progId: 62, linkId: 0 },
      ],
    })], [], new Map());
    expect(refs).toEqual([
      { to: { kind: 'prog', id: 60 }, from: { kind: 'tcx', id: 3 }, what: `tcx ingress of veth0 in netns ${NS} (no link)`, count: 1 },
      { to: { kind: 'prog', id: 62 }, from: { kind: 'netkit', id: 8 }, what: `netkit peer of nk0 in netns ${NS} (no link)`, count: 1 },
    ]);
  });

  it('a flow dissector is the namespace\'s, unless a netns link of that namespace and attach type has it', () => {
    const ns = empty({ netns: [{ point: 'flow dissector', attachType: 17, progId: 70 }] });
    expect(attachmentRefs([ns], [], new Map())).toEqual([
      { to: { kind: 'prog', id: 70 }, from: { kind: 'netns', id: NS }, what: `flow dissector of netns ${NS}`, count: 1 },
    ]);
    const link = { type: 'netns', progId: 70, defunct: false, targetId: NS, attachType: 17 };
    expect(attachmentRefs([ns], [link], new Map())).toEqual([]);
    expect(attachmentRefs([ns], [{ ...link, targetId: NS + 1 }], new Map())).toHaveLength(1);
    expect(attachmentRefs([ns], [{ ...link, defunct: true }], new Map())).toHaveLength(1);
  });

  it('a namespace read in part makes every program of the types it could hold in use, with what is unknown', () => {
    const ns = empty({ incomplete: { progTypes: ['sched_cls', 'sched_act'], why: 'filters of veth0: over the message budget' } });
    const refs = attachmentRefs([ns], [], new Map([[1, 'sched_cls'], [2, 'xdp'], [3, 'sched_act']]));
    expect(refs.map((r) => [r.to.id, r.from, r.count])).toEqual([[1, { kind: 'netns', id: NS }, null], [3, { kind: 'netns', id: NS }, null]]);
    expect(refs[0]!.what).toBe(`possibly attached in netns ${NS}, which could not be read in full (filters of veth0: over the message budget)`);
  });

  it('tc handles read as tc prints them', () => {
    expect([tcHandle(0x10000), tcHandle(0x10010), tcHandle(0xfffffff2), tcHandle(0)]).toEqual(['1:', '1:10', 'ffff:fff2', '0:']);
  });
});
