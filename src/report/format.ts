// Small text helpers shared by the human renderers: tables, sizes, colour.

export interface Style {
  color: boolean;
}

const CODES: Record<string, [number, number]> = {
  red: [31, 39], yellow: [33, 39], green: [32, 39], dim: [2, 22], bold: [1, 22], cyan: [36, 39],
};

export function paint(style: Style, color: keyof typeof CODES, s: string): string {
  if (!style.color) return s;
  const [a, b] = CODES[color]!;
  return `\x1b[${a}m${s}\x1b[${b}m`;
}

/** Colour only on a terminal and never with NO_COLOR (no-color.org). */
export function styleFor(stream: NodeJS.WriteStream): Style {
  return { color: !!stream.isTTY && !process.env.NO_COLOR && process.env.TERM !== 'dumb' };
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** Control characters in names from hostile containers must not reach the terminal raw. */
export function safe(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

/** Left-aligned columns; the last column is never padded. */
export function table(headers: string[], rows: string[][], style?: Style): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i]! - visible(c).length))).join('  ').trimEnd();
  const head = line(headers);
  return [style ? paint(style, 'bold', head) : head, ...rows.map(line)].join('\n');
}

export function ago(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)}m ago`;
  if (s < 129600) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}
