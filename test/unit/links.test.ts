import { describe, expect, it } from 'vitest';
import { processTarget } from '../../src/analysis/links.js';

describe('links on a process (uprobe_multi)', () => {
  it('is live while the kernel names a live process', () => {
    expect(processTarget(123, { comm: 'sleep', state: 'S' })).toEqual({ defunct: false, target: 'process 123 (sleep)' });
  });

  it('is defunct when that process is a zombie or gone', () => {
    expect(processTarget(123, { comm: 'sleep', state: 'Z' })).toEqual({ defunct: true, target: null });
    expect(processTarget(123, null)).toEqual({ defunct: true, target: null });
  });

  it('pid 0 is defunct only when an earlier snapshot saw a pid: otherwise it may probe every process', () => {
    expect(processTarget(0, null, 123)).toEqual({ defunct: true, target: null });
    expect(processTarget(0, null)).toEqual({ defunct: false, target: null });
  });
});
