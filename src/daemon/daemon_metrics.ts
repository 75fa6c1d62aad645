/**
 * The daemon's Prometheus metrics, fed by the parts' events (the collector's attempts, the exit
 * path's records) and by gauges read at scrape time. Every series is shown from the start and
 * none disappears; labelled gauges partition their total, so `sum()` over them never counts a
 * container twice.
 *
 * @module
 */

import type { CollectorEvent, CollectorStats } from "../gc/collector.ts";
import type { ExitPathEvent } from "./exit_path.ts";
import { Counter, Gauge, Histogram, Registry } from "./metrics.ts";

/** What the gauges read when scraped. */
export interface MetricSources {
  /** Containers whose exit FIFO is watched. */
  monitored(): number;
  /** Read ends held by create-fifo, not armed yet. */
  heldFifos(): number;
  /** Exits held in memory, not durable yet. */
  heldExits(): number;
  /** Whether the daemon is degraded. */
  degraded(): boolean;
  /** The collector's counts. */
  gc(): CollectorStats;
}

/** The /proc state chars reported apart in `reaperd_gc_entries`; the rest are "other". */
const PROC_STATES = ["D", "Z"];
const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const CLEANUP_SECONDS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The daemon's metrics. Pass `onCollectorEvent` and `onExitPathEvent` to the parts. */
export class DaemonMetrics {
  readonly #registry = new Registry();
  readonly #exits = this.#registry.add(
    new Counter(
      "reaperd_exits_total",
      "Container exits recorded, by whether the status is known.",
      [{ known: "true" }, { known: "false" }],
    ),
  );
  readonly #refused = this.#registry.add(
    new Counter("reaperd_exits_refused_total", "Exits the store refused for good (lost)."),
  );
  readonly #oomKills = this.#registry.add(
    new Counter(
      "reaperd_oom_kills_total",
      "Container exits recorded as out of memory (the memory cgroup's OOM killer fired).",
    ),
  );
  readonly #latency = this.#registry.add(
    new Histogram(
      "reaperd_exit_record_latency_seconds",
      "Time from an exit being decoded to its record being durable.",
      SECONDS,
    ),
  );
  readonly #cleanups = this.#registry.add(
    new Counter(
      "reaperd_cleanups_total",
      "Cleanup attempts, the first after an exit and every retry, by result (ok, failed).",
      [{ result: "ok" }, { result: "failed" }],
    ),
  );
  readonly #stepFailures = this.#registry.add(
    new Counter(
      "reaperd_cleanup_step_failures_total",
      "Failed cleanup attempts, retries included, by the step that failed " +
        '("none" when the cleaner failed outside any step).',
      [],
    ),
  );
  readonly #cleanupSeconds = this.#registry.add(
    new Histogram(
      "reaperd_cleanup_duration_seconds",
      "How long one cleanup attempt took.",
      CLEANUP_SECONDS,
    ),
  );
  readonly #storeErrors = this.#registry.add(
    new Counter(
      "reaperd_gc_store_errors_total",
      "Times the collector could not read or write the store (the entry is retried).",
    ),
  );

  /** Containers adopted from the state root at start (no record named them). */
  adopted = 0;

  /**
   * @param sources What the gauges read.
   * @param version reaperd's version, for `reaperd_build_info`.
   */
  constructor(sources: MetricSources, version: string) {
    const r = this.#registry;
    r.add(
      new Gauge("reaperd_monitored_containers", "Containers whose exit FIFO is watched.", () => [
        [{}, sources.monitored()],
      ]),
    );
    r.add(
      new Gauge("reaperd_held_fifos", "Read ends held by create-fifo, not armed yet.", () => [
        [{}, sources.heldFifos()],
      ]),
    );
    r.add(
      new Gauge(
        "reaperd_stopping_containers",
        "Containers whose exit is recorded and whose first cleanup attempt has not ended.",
        () => [[{}, sources.gc().stopping]],
      ),
    );
    r.add(
      new Gauge(
        "reaperd_gc_entries",
        "Containers in GC, by the /proc state of a process that would not die at their last " +
          'attempt (D, Z, other; "none" when no process was left). The series add up to the total.',
        () => {
          const by = sources.gc().byProcState;
          let other = 0;
          for (const [state, n] of Object.entries(by)) {
            if (state !== "none" && !PROC_STATES.includes(state)) other += n;
          }
          return [
            [{ state: "none" }, by.none ?? 0],
            ...PROC_STATES.map((state): [Record<string, string>, number] => [
              { state },
              by[state] ?? 0,
            ]),
            [{ state: "other" }, other],
          ];
        },
      ),
    );
    r.add(
      new Gauge("reaperd_pending_exit_writes", "Exits decoded but not yet durable.", () => [
        [{}, sources.heldExits()],
      ]),
    );
    r.add(
      new Gauge("reaperd_degraded", "1 while health says degraded.", () => [
        [{}, sources.degraded() ? 1 : 0],
      ]),
    );
    r.add(
      new Gauge("reaperd_adopted_containers", "Containers found at start with no record.", () => [
        [{}, this.adopted],
      ]),
    );
    r.add(
      new Gauge(
        "reaperd_build_info",
        "reaperd's version and the Deno it runs on (always 1).",
        () => [
          [{ version, deno: Deno.version.deno }, 1],
        ],
      ),
    );
    r.add(
      new Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", () => [
        [{}, Deno.memoryUsage().rss],
      ]),
    );
    r.add(new Gauge("process_open_fds", "Open file descriptors.", () => [[{}, openFds()]]));
    r.add(
      new Gauge(
        "process_start_time_seconds",
        "Start time of the process since the epoch, in seconds.",
        () => [[{}, Math.round(performance.timeOrigin) / 1000]],
      ),
    );
  }

  /** The collector's observer. */
  readonly onCollectorEvent = (event: CollectorEvent): void => {
    if (event.type === "store-error") this.#storeErrors.inc();
    if (event.type !== "attempt-finished") return;
    this.#cleanups.inc({ result: event.ok ? "ok" : "failed" });
    if (!event.ok) this.#stepFailures.inc({ step: event.outcome.failedStep ?? "none" });
    this.#cleanupSeconds.observe(event.durationMs / 1000);
  };

  /** The exit path's observer. */
  readonly onExitPathEvent = (event: ExitPathEvent): void => {
    if (event.type === "refused") {
      this.#refused.inc();
      return;
    }
    this.#exits.inc({ known: String(event.known) });
    if (event.oomKilled) this.#oomKills.inc();
    this.#latency.observe(event.latencyMs / 1000);
  };

  /** The text exposition of every metric. */
  render(): string {
    return this.#registry.render();
  }
}

/** Open descriptors of this process (-1 when /proc cannot say). */
function openFds(): number {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
    // The directory read itself held one.
    return n - 1;
  } catch {
    return -1;
  }
}
