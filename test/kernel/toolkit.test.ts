// The BTF reader and the loader against the running kernel.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Btf, kernelBtf } from '../../src/kernel/btf.js';
import { Asm, R0, R1, R2 } from '../../src/kernel/asm.js';
import { loadProgram, VerifierError, createIterLink, runIterator, readToEnd } from '../../src/kernel/loader.js';
import { closeFd, progInfo, mapCreate, KernelError } from '../../src/kernel/bpf.js';
import { iteratorProgram } from '../../src/kernel/iterators.js';
import { ProgType, AttachType, MapType } from '../../src/kernel/abi.js';

describe('vmlinux BTF', () => {
  const btf = kernelBtf();

  it('has struct bpf_map with id, refcnt and usercnt, at the offsets the kernel uses', () => {
    const map = btf.find('struct', 'bpf_map');
    const names = btf.members(map).map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining(['id', 'refcnt', 'usercnt', 'map_type']));
    // atomic64_t: an 8-byte counter inside
    expect(btf.field(map, 'refcnt.counter').size).toBe(8);
    expect(btf.field(map, 'usercnt.counter').offset).toBe(btf.field(map, 'usercnt').offset);
    expect(btf.field(map, 'id').size).toBe(4);
  });

  it('follows a pointer in a dotted path, and finds members of anonymous unions', () => {
    const prog = btf.find('struct', 'bpf_prog');
    const p = btf.loadPath(prog, 'aux.id');
    expect(p.offsets).toEqual([btf.field(prog, 'aux').offset, btf.field(btf.find('struct', 'bpf_prog_aux'), 'id').offset]);
    // struct bpf_iter__task_file wraps its pointers in anonymous unions (__bpf_md_ptr)
    const ctx = btf.find('struct', 'bpf_iter__task_file');
    expect(btf.field(ctx, 'file')).toMatchObject({ offset: 24, size: 8 });
    expect(btf.field(ctx, 'fd')).toMatchObject({ offset: 16, size: 4 });
  });

  it('knows struct_ops slots are function pointers', () => {
    const cc = btf.members(btf.find('struct', 'tcp_congestion_ops'));
    expect(cc.find((m) => m.name === 'ssthresh')!.isFuncPtr).toBe(true);
    expect(cc.find((m) => m.name === 'name')!.isFuncPtr).toBe(false);
  });

  it('gives helper numbers equal to the UAPI ones, and the kfunc ids', () => {
    expect(btf.enumValue('bpf_func_id', 'BPF_FUNC_seq_write')).toBe(127);
    expect(btf.enumValue('bpf_func_id', 'BPF_FUNC_probe_read_user_str')).toBe(114);
    expect(btf.enumValue('bpf_struct_ops_state', 'BPF_STRUCT_OPS_STATE_INUSE')).toBe(1);
    expect(btf.kind(btf.find('func', 'bpf_rdonly_cast'))).toBe('func');
  });

  it('says what is missing when there is no BTF to read', () => {
    let err: unknown;
    try {
      Btf.load('/nonexistent/vmlinux');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelError);
    expect((err as KernelError).message).toBe('BTF: cannot read /nonexistent/vmlinux: ENOENT');
  });

  it('parses in bounded time and is parsed once per process', () => {
    const t0 = performance.now();
    const fresh = Btf.load();
    expect(performance.now() - t0).toBeLessThan(500);
    expect(fresh.typeCount).toBeGreaterThan(10_000);
    expect(kernelBtf()).toBe(btf);
  });
});

describe('loader', () => {
  it('loads a program on the fast path', () => {
    const fd = loadProgram({ name: 'pl_ok', type: ProgType.SOCKET_FILTER, insns: new Asm().mov(R0, 0).exit().assemble() });
    try {
      expect(progInfo(fd).name).toBe('pl_ok');
    } finally {
      closeFd(fd);
    }
  });

  it('explains a refusal with the end of the verifier log', () => {
    // r2 is never written before it is read
    const insns = new Asm().mov(R0, R2).exit().assemble();
    let err: unknown;
    try {
      closeFd(loadProgram({ name: 'pl_bad', type: ProgType.SOCKET_FILTER, insns }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VerifierError);
    expect(err).toBeInstanceOf(KernelError);
    expect((err as VerifierError).code).toBe('EACCES');
    expect((err as VerifierError).message).toMatch(/^BPF_PROG_LOAD pl_bad: EACCES .*verifier log ends:\n[\s\S]*R2 !read_ok/);
    // and in one line, for a snapshot's errors
    expect((err as VerifierError).summary).toMatch(/^BPF_PROG_LOAD pl_bad: EACCES \(permission denied\): R2 !read_ok$/);
  });

  it('refuses an iterator program whose attach target is not an iterator, saying why', () => {
    const insns = new Asm().mov(R0, 0).exit().assemble();
    // an iterator program whose attach_btf_id is not an iterator's function
    const notIter = kernelBtf().find('struct', 'bpf_map');
    expect(() => loadProgram({
      name: 'pl_noiter', type: ProgType.TRACING, insns, expectedAttachType: AttachType.TRACE_ITER, attachBtfId: notIter,
    })).toThrow(/^BPF_PROG_LOAD pl_noiter: EINVAL .*verifier log ends:\n.*not a function/s);
  });

  it('says when the kernel gave no log at all', () => {
    const insns = new Asm().mov(R0, 0).exit().assemble();
    // refused before the verifier runs: no such program type
    expect(() => loadProgram({ name: 'pl_notype', type: 9999, insns })).toThrow(/^BPF_PROG_LOAD pl_notype: EINVAL .*; the verifier log is empty$/);
  });

  it('runs an iterator through its link, and caps what it reads', () => {
    const btf = kernelBtf();
    const mapFd = mapCreate({ type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 1, name: 'pl_iter_probe' });
    const progFd = loadProgram({
      name: 'pl_iter', type: ProgType.TRACING, insns: iteratorProgram(btf, 'bpf_map'),
      expectedAttachType: AttachType.TRACE_ITER, attachBtfId: btf.find('func', 'bpf_iter_bpf_map'),
    });
    try {
      const linkFd = createIterLink(progFd);
      try {
        const all = runIterator(linkFd, 1 << 24, 'test');
        // at least our map: whole 32-byte records (id, type, refcnt, usercnt, flags, pad)
        expect(all.length % 32).toBe(0);
        expect(all.length).toBeGreaterThanOrEqual(32);
        expect(() => runIterator(linkFd, all.length - 1, 'test')).toThrow(/over \d+ bytes\): E2BIG/);
      } finally {
        closeFd(linkFd);
      }
    } finally {
      closeFd(progFd);
      closeFd(mapFd);
    }
  });

  it('readToEnd reads a plain fd to its end', () => {
    const fd = fs.openSync('/proc/self/status', 'r');
    try {
      expect(readToEnd(fd, 1 << 20, 'status').toString()).toMatch(/^Name:/);
    } finally {
      fs.closeSync(fd);
    }
  });
});
