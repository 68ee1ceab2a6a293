// The bench's layout of pins (scripts/bench-plan.mjs): the share of programs it is asked for,
// spread evenly, and the same pins at the default share as before --prog-share existed.
import { describe, expect, it } from 'vitest';
import { planInstance, planTotals, splitPins } from '../../scripts/bench-plan.mjs';

type Planned = { rel: string; kind: 'map' | 'prog'; withMap?: boolean; hold: boolean };

describe('bench plan', () => {
  it('makes every 10th pin a program by default, half of them using the map before them', () => {
    const plan: Planned[] = planInstance(3, 200, 1234);
    const progs = plan.flatMap((p, k) => (p.kind === 'prog' ? [k] : []));
    expect(progs).toEqual(Array.from({ length: 20 }, (_, i) => i * 10 + 9));
    expect(plan.filter((p) => p.withMap).length).toBe(10);
  });

  it('spreads another share of programs evenly over the pins', () => {
    const plan: Planned[] = planInstance(0, 700, 1234, undefined, 0.27);
    expect(plan.filter((p) => p.kind === 'prog').length).toBe(189);
    // no run of maps longer than a program's share allows (1 / 0.27 -> at most 3 in a row)
    let run = 0;
    let longest = 0;
    for (const p of plan) {
      run = p.kind === 'map' ? run + 1 : 0;
      longest = Math.max(longest, run);
    }
    expect(longest).toBeLessThanOrEqual(3);
  });

  it('totals what the plan makes, for the orchestrator to check the workers against', () => {
    const counts = splitPins(35000, 50);
    const totals = counts.map((c: number, i: number) => planTotals(i, c, 0.27));
    const sum = (k: string) => totals.reduce((a: number, t: Record<string, number>) => a + t[k]!, 0);
    expect(sum('pins')).toBe(35000);
    expect(sum('progs')).toBe(9450);
    expect(sum('maps')).toBe(25550);
    expect(planTotals(7, 300).progs).toBe(30);
  });
});
