// The script of the history report, run in the browser. html.ts inlines its source
// (Function.prototype.toString), so drawCharts must not use anything from this module's
// scope: only its argument, its own inner functions and the page's globals (uPlot,
// inlined before it; the data in <script type="application/json" id="pinleak-data">).
/* eslint-disable @typescript-eslint/no-explicit-any */
import type { ChartData } from './history.js';

declare const uPlot: any;

export interface ClientOptions {
  /** chart colours by owner and by status, chosen in html.ts so the tables use the same ones */
  ownerColors: Record<string, string>;
  statusColors: Record<string, string>;
}

export function drawCharts(opts: ClientOptions): void {
  const started = performance.now();
  const data: ChartData = JSON.parse(document.getElementById('pinleak-data')!.textContent!).chart;
  const css = getComputedStyle(document.documentElement);
  const ink = css.getPropertyValue('--ink').trim();
  const grid = css.getPropertyValue('--grid').trim();
  const partialColor = css.getPropertyValue('--partial').trim();
  const charts: Record<string, { plot: any; colors: string[] }> = {};

  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  const bytes = (n: number | null): string => {
    if (n === null || n === undefined) return '-';
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return i === 0 ? `${v} B` : `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
  };
  const count = (n: number | null): string => (n === null || n === undefined ? '-' : String(n));
  const alpha = (hex: string, a: string) => hex + a;

  // partial scans: a dashed line and a triangle at the foot of the plot
  const partialMarks = {
    hooks: {
      draw: (u: any) => {
        const ctx: CanvasRenderingContext2D = u.ctx;
        const { top, height } = u.bbox;
        ctx.save();
        ctx.strokeStyle = partialColor;
        ctx.fillStyle = partialColor;
        ctx.lineWidth = Math.max(1, devicePixelRatio);
        ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
        for (const i of data.partial) {
          const x = Math.round(u.valToPos(data.x[i], 'x', true));
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          const s = 6 * devicePixelRatio;
          ctx.beginPath();
          ctx.moveTo(x, top + height - s * 1.6);
          ctx.lineTo(x - s, top + height);
          ctx.lineTo(x + s, top + height);
          ctx.fill();
        }
        ctx.restore();
      },
    },
  };

  const axis = (values?: (u: any, splits: number[]) => string[]) => ({
    stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, ...(values ? { values, size: 70 } : {}),
  });
  const xRange = (_u: any, min: number, max: number) => (min === max ? [min - 3600, max + 3600] : [min, max]);
  const yRange = (_u: any, _min: number, max: number) => [0, max > 0 ? max * 1.08 : 1];

  function plot(id: string, series: { label: string; color: string; values: number[] }[], stacked: boolean, fmt: (n: number | null) => string): void {
    const el = document.getElementById(id)!;
    const raw = series.map((s) => s.values);
    let cols = raw;
    const bands: { series: [number, number] }[] = [];
    if (stacked) {
      const acc = new Array<number>(data.x.length).fill(0);
      cols = raw.map((v) => v.map((b, i) => (acc[i] += b)));
      for (let i = 1; i < series.length; i++) bands.push({ series: [i + 1, i] });
    }
    const u = new uPlot({
      width: Math.max(320, el.clientWidth),
      height: 260,
      scales: { x: { time: true, range: xRange }, y: { range: yRange } },
      axes: [axis(), axis((_u: any, splits: number[]) => splits.map(fmt))],
      series: [
        { label: 'time', value: (_u: any, v: number | null) => new Date((v ?? data.x[data.x.length - 1]!) * 1000).toISOString().replace('T', ' ').slice(0, 19) + 'Z' },
        ...series.map((s, si) => ({
          label: s.label, stroke: s.color, width: 2, fill: stacked ? alpha(s.color, '66') : undefined,
          points: { show: data.x.length < 60 },
          // away from the cursor the legend shows the latest snapshot
          value: (_u: any, _v: number, _s: number, i: number | null) => fmt(raw[si]![i ?? data.x.length - 1] ?? null),
        })),
      ],
      bands,
      plugins: [partialMarks],
      legend: { live: true },
    }, [data.x, ...cols], el);
    charts[id] = { plot: u, colors: series.map((s) => s.color) };
  }

  const ownerSeries = (list: ChartData['leaked']) => list.map((o) => ({ label: o.owner, color: opts.ownerColors[o.owner] ?? '#888888', values: o.values }));
  const none = (id: string, text: string) => {
    const p = document.createElement('p');
    p.className = 'empty';
    p.textContent = text;
    document.getElementById(id)!.appendChild(p);
  };
  if (data.leaked.length) plot('chart-leaked', ownerSeries(data.leaked), true, bytes);
  else none('chart-leaked', 'No leaked memory in this range.');
  if (data.orphaned.length) plot('chart-orphaned', ownerSeries(data.orphaned), true, bytes);
  else none('chart-orphaned', 'No orphaned memory in this range.');
  plot('chart-pins', data.pins.map((s) => ({ label: s.status, color: opts.statusColors[s.status] ?? '#888888', values: s.values })), false, count);

  addEventListener('resize', () => {
    for (const id of Object.keys(charts)) charts[id]!.plot.setSize({ width: Math.max(320, document.getElementById(id)!.clientWidth), height: 260 });
  });
  (window as any).pinleakCharts = charts;
  document.body.dataset.renderMs = String(Math.round(performance.now() - started));
}
