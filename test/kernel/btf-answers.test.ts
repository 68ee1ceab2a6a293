// The iterator programs' BTF answers, kept per boot in a file (kernelBtfAnswers): the same
// bytecode as from the BTF itself, and never taken from a file pinleak cannot trust.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { kernelBtf, kernelBtfAnswers } from '../../src/kernel/btf.js';
import { iteratorProgram } from '../../src/kernel/iterators.js';

const TARGETS = ['bpf_map', 'bpf_prog', 'bpf_link', 'task_file', 'task_vma', 'task', 'prog_info'] as const;
const programs = (btf: Parameters<typeof iteratorProgram>[0]) => TARGETS.map((t) => iteratorProgram(btf, t).toString('hex'));

describe('BTF answers kept per boot', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinleak-btf-'));
    file = path.join(dir, 'answers.json');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const written = () => {
    const first = kernelBtfAnswers(file);
    const code = programs(first);
    expect(first.fromFile).toBe(false);
    first.persist();
    return code;
  };

  it('gives the programs the BTF gives, and answers them all from the file in the next process', () => {
    const code = written();
    expect(code).toEqual(programs(kernelBtf()));
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const again = kernelBtfAnswers(file);
    expect(programs(again)).toEqual(code);
    expect(again.fromFile).toBe(true);
  });

  it('keeps what the BTF lacks too: a second process is refused without reading it', () => {
    const first = kernelBtfAnswers(file);
    expect(() => first.enumValue('bpf_func_id', 'BPF_FUNC_no_such_helper')).toThrow(/no BPF_FUNC_no_such_helper/);
    first.persist();
    const again = kernelBtfAnswers(file);
    expect(() => again.enumValue('bpf_func_id', 'BPF_FUNC_no_such_helper')).toThrow(/no BPF_FUNC_no_such_helper/);
    expect(again.fromFile).toBe(true);
  });

  it('asks the BTF when the file is of another boot, corrupt, or writable by others', () => {
    const code = written();
    const original = fs.readFileSync(file, 'utf8');
    const doc = JSON.parse(original) as { btf: string; answers: Record<string, unknown> };
    const variants: [string, () => void][] = [
      ['another boot', () => fs.writeFileSync(file, JSON.stringify({ ...doc, btf: `00000000-0000-0000-0000-000000000000 ${doc.btf.split(' ')[1]}` }))],
      ['a wrong answer', () => fs.writeFileSync(file, JSON.stringify({ ...doc, answers: { ...doc.answers, [Object.keys(doc.answers)[0]!]: 'x' } }))],
      ['not JSON', () => fs.writeFileSync(file, original.slice(0, 100))],
      ['group-writable', () => { fs.writeFileSync(file, original); fs.chmodSync(file, 0o664); }],
      ['owned by nobody', () => { fs.writeFileSync(file, original); fs.chmodSync(file, 0o600); fs.chownSync(file, 65534, 65534); }],
      ['a symlink to it', () => { fs.rmSync(file, { force: true }); fs.writeFileSync(`${file}.real`, original, { mode: 0o600 }); fs.symlinkSync(`${file}.real`, file); }],
      ['in a directory others may write', () => { fs.rmSync(file, { force: true }); fs.writeFileSync(file, original, { mode: 0o600 }); fs.chmodSync(dir, 0o777); }],
    ];
    for (const [what, spoil] of variants) {
      spoil();
      const a = kernelBtfAnswers(file);
      expect({ what, code: programs(a) }).toEqual({ what, code });
      expect({ what, fromFile: a.fromFile }).toEqual({ what, fromFile: false });
      fs.chmodSync(dir, 0o700);
      fs.rmSync(file, { force: true });
      fs.rmSync(`${file}.real`, { force: true });
    }
  });
});
