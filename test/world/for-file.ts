// One world and one temporary database for a test file: both are torn down after it,
// also when building the world fails halfway.
import { afterAll, beforeAll } from 'vitest';
import { createWorld, type World } from './world.js';
import { tempDb } from '../helpers.js';

export interface FileWorld {
  world: World;
  db: ReturnType<typeof tempDb>;
}

export function worldForFile(build?: (t: FileWorld) => Promise<void>, timeoutMs = 120_000): FileWorld {
  const t = {} as FileWorld;
  const teardown = async () => {
    await t.world?.cleanup(); // a second call does nothing
    t.db?.remove();
  };
  beforeAll(async () => {
    t.world = createWorld();
    t.db = tempDb();
    try {
      await build?.(t);
    } catch (e) {
      await teardown();
      throw e;
    }
  }, timeoutMs);
  afterAll(teardown);
  return t;
}
