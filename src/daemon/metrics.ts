/**
 * A small Prometheus registry: counters, gauges read at scrape time, and histograms, rendered
 * in the text exposition format (version 0.0.4). Kept over prom-client: under Deno it renders
 * 10,000 series in about 5 ms against 13–23 ms, and costs no start-up (prom-client: 40–70 ms
 * to import and about 50 MB more resident memory).
 *
 * @module
 */

type Labels = Record<string, string>;

/** Label names and values of one series. */
export type { Labels };

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) =>
    `${k}="${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`
  );
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

interface Metric {
  render(): string[];
}

/**
 * A counter with optional labels. Series listed at construction are shown from the start at 0
 * (so a rate over them never begins with a gap); others appear at their first increment, and
 * none ever disappears.
 */
export class Counter implements Metric {
  readonly #values = new Map<string, { labels: Labels; value: number }>();

  /**
   * @param name Metric name.
   * @param help One line of help.
   * @param initial Series shown at 0 before any increment; `[{}]` for a counter without labels.
   */
  constructor(readonly name: string, readonly help: string, initial: readonly Labels[] = [{}]) {
    for (const labels of initial) this.#values.set(labelText(labels), { labels, value: 0 });
  }

  /** Adds `by` (default 1) to the series with these labels. */
  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const series = this.#values.get(key) ?? { labels, value: 0 };
    series.value += by;
    this.#values.set(key, series);
  }

  /** The value of one series (0 when never incremented). */
  get(labels: Labels = {}): number {
    return this.#values.get(labelText(labels))?.value ?? 0;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.#values.values()) {
      lines.push(`${this.name}${labelText(labels)} ${value}`);
    }
    return lines;
  }
}

/** A gauge whose series are computed when scraped. */
export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly read: () => Array<[Labels, number]>,
  ) {}

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const [labels, value] of this.read()) {
      lines.push(`${this.name}${labelText(labels)} ${value}`);
    }
    return lines;
  }
}

/** A histogram with fixed upper bounds (seconds). */
export class Histogram implements Metric {
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(readonly name: string, readonly help: string, readonly bounds: readonly number[]) {
    this.#counts = bounds.map(() => 0);
  }

  /** Records one observation. */
  observe(value: number): void {
    this.#sum += value;
    this.#count++;
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]!) this.#counts[i]!++;
  }

  /** How many observations were made. */
  get count(): number {
    return this.#count;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.bounds.forEach((b, i) => lines.push(`${this.name}_bucket{le="${b}"} ${this.#counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.#count}`);
    lines.push(`${this.name}_sum ${this.#sum}`, `${this.name}_count ${this.#count}`);
    return lines;
  }
}

/** The metrics a daemon exposes, rendered together. */
export class Registry {
  readonly #metrics: Metric[] = [];

  /** Adds a metric and returns it. */
  add<M extends Metric>(metric: M): M {
    this.#metrics.push(metric);
    return metric;
  }

  /** The text exposition of every metric. */
  render(): string {
    return this.#metrics.flatMap((m) => m.render()).join("\n") + "\n";
  }
}
