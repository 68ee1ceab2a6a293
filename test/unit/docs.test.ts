// The documentation says what the code does: the README's commands are what CI runs, the
// JSON contract is in the repository, and the definitions match the output.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const read = (f: string) => fs.readFileSync(path.join(REPO, f), 'utf8');
/** every user-facing text file: README, docs, deploy */
const userFacing = () => ['README.md', ...['docs', 'deploy'].flatMap((d) => fs.readdirSync(path.join(REPO, d), { recursive: true, encoding: 'utf8' })
  .map((f) => path.join(d, f)).filter((f) => fs.statSync(path.join(REPO, f)).isFile()))];

describe('the README', () => {
  it('quick start: the test command is the one CI runs, and it installs what the tests need', () => {
    const quick = /## Quick start[\s\S]*?```sh\n([\s\S]*?)```/.exec(read('README.md'))![1]!;
    const commands = quick.split('\n').filter(Boolean).map((l) => l.replace(/\s+#.*$/, '').trim());
    expect(commands).toEqual(['npm ci && npm link && pinleak scan', 'bash .ci/run']);
    const ci = read('.ci/run');
    for (const pkg of ['bpftool', 'prometheus', 'python3-prometheus-client', 'iproute2']) expect(ci).toMatch(new RegExp(`apt-get install[^\\n]*\\b${pkg}\\b`));
    // every supported Node.js runs the suite: scripts/with-node MAJOR npm test
    expect(ci).toMatch(/scripts\/with-node "\$major" npm test/);
  });
});

describe('the JSON contract', () => {
  it('is in the repository: no user-facing text points at a spec outside it', () => {
    for (const f of userFacing()) expect(read(f), f).not.toMatch(/SPEC section|shared\/SPEC|SPEC\.md/);
  });

  it('is linked from the README and the docs index', () => {
    expect(read('README.md')).toContain('[`docs/json.md`](docs/json.md)');
    expect(read('README.md')).toContain('[`docs/schema/`](docs/schema/)');
    expect(read('docs/README.md')).toContain('[json.md](json.md)');
  });
});

describe('the statuses', () => {
  it('orphaned is defined as the output uses it: a creator may be named while it still runs', () => {
    for (const f of ['README.md', 'docs/README.md']) {
      const row = read(f).split('\n').find((l) => l.startsWith('| `orphaned` |'))!;
      expect(row, f).toMatch(/still running/);
      expect(row, f).not.toMatch(/who (made|created) it is not known \|$/);
    }
  });
});
