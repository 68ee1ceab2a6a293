// statAt and readDirAt: the walk's lstat and readdir on a held directory fd, against fs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readDirAt, statAt } from '../../src/kernel/fs.js';
import { devString } from '../../src/kernel/procfs.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinleak-statat-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('statAt', () => {
  it('gives what lstat gives for a file, a directory and a symlink (not followed); null for a missing entry', () => {
    fs.writeFileSync(path.join(dir, 'file'), 'x', { mode: 0o640 });
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.symlinkSync('/etc/passwd', path.join(dir, 'link'));
    const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      for (const name of ['file', 'sub', 'link']) {
        const st = fs.lstatSync(path.join(dir, name));
        expect(statAt(fd, name)).toEqual({
          devMajor: Number(devString(st.dev).split(':')[0]), devMinor: Number(devString(st.dev).split(':')[1]), ino: st.ino, mode: st.mode,
          uid: st.uid, gid: st.gid, ctimeMs: st.ctimeMs, isFile: st.isFile(), isDirectory: st.isDirectory(),
        });
      }
      expect(statAt(fd, 'link')!.isFile).toBe(false);
      expect(statAt(fd, 'missing')).toBeNull();
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('readDirAt', () => {
  it('lists what readdir lists, with the same types, over several getdents64 calls', () => {
    const d = fs.mkdtempSync(path.join(dir, 'many-'));
    for (let i = 0; i < 3000; i++) fs.writeFileSync(path.join(d, `pin_with_a_longish_name_${i}`), '');
    fs.mkdirSync(path.join(d, 'sub'));
    fs.symlinkSync('sub', path.join(d, 'link'));
    fs.writeFileSync(path.join(d, 'név'), ''); // a UTF-8 name
    const fd = fs.openSync(d, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      const got = readDirAt(fd).map((e) => `${e.name} ${e.kind}`).sort();
      const want = fs.readdirSync(d, { withFileTypes: true })
        .map((e) => `${e.name} ${e.isDirectory() ? 'dir' : e.isFile() ? 'file' : 'other'}`).sort();
      expect(got).toHaveLength(3003);
      expect(got).toEqual(want);
    } finally {
      fs.closeSync(fd);
    }
  });
});
