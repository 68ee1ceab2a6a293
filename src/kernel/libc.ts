// The C library, loaded once for every koffi binding (bpf(2), openat2, fstatfs, sysconf).
import koffi from 'koffi';

let handle: ReturnType<typeof koffi.load> | null = null;

export function libc(): ReturnType<typeof koffi.load> {
  handle ??= koffi.load('libc.so.6');
  return handle;
}
