// The C library, loaded once for every koffi binding (bpf(2), openat2, fstatfs, sysconf).
import koffi from 'koffi';

let handle: ReturnType<typeof koffi.load> | null = null;

export function libc(): ReturnType<typeof koffi.load> {
  handle ??= koffi.load('libc.so.6');
  return handle;
}

/** A libc function, bound on its first call (koffi prototype syntax). */
export function libcFunction<F>(prototype: string): () => F {
  let fn: F | null = null;
  return () => (fn ??= libc().func(prototype) as unknown as F);
}
