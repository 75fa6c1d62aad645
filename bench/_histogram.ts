/**
 * Reads a Prometheus histogram from the daemon's /metrics text, so the benchmark can report
 * what the daemon itself measured over one phase (the difference of two snapshots).
 *
 * @module
 */

/** Cumulative bucket counts by upper bound (seconds; Infinity for +Inf), and the sum. */
export interface HistogramSnapshot {
  buckets: Map<number, number>;
  sum: number;
  count: number;
}

/** Parses histogram `name` out of exposition text. */
export function parseHistogram(text: string, name: string): HistogramSnapshot {
  const buckets = new Map<number, number>();
  let sum = 0;
  let count = 0;
  for (const line of text.split("\n")) {
    const bucket = line.match(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)$`));
    if (bucket !== null) {
      buckets.set(bucket[1] === "+Inf" ? Infinity : Number(bucket[1]), Number(bucket[2]));
    } else if (line.startsWith(`${name}_sum `)) sum = Number(line.split(" ")[1]);
    else if (line.startsWith(`${name}_count `)) count = Number(line.split(" ")[1]);
  }
  return { buckets, sum, count };
}

/** What happened between two snapshots. */
export function histogramDelta(
  before: HistogramSnapshot,
  after: HistogramSnapshot,
): HistogramSnapshot {
  const buckets = new Map<number, number>();
  for (const [le, n] of after.buckets) buckets.set(le, n - (before.buckets.get(le) ?? 0));
  return { buckets, sum: after.sum - before.sum, count: after.count - before.count };
}

/**
 * The upper bound (ms) of the bucket holding percentile `p`: "at most this", as far as the
 * buckets can tell. NaN when empty.
 */
export function bucketPercentileMs(h: HistogramSnapshot, p: number): number {
  if (h.count === 0) return NaN;
  const want = Math.ceil((p / 100) * h.count);
  const bounds = [...h.buckets.keys()].sort((a, b) => a - b);
  for (const le of bounds) if (h.buckets.get(le)! >= want) return le * 1000;
  return Infinity;
}

/** The mean (ms). */
export function meanMs(h: HistogramSnapshot): number {
  return h.count === 0 ? NaN : (h.sum / h.count) * 1000;
}
