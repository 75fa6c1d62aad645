/**
 * How records, GC entries, events and health read for people. Scripts use `--json`, which
 * prints the API's objects unchanged.
 *
 * @module
 */

import type { GcStatus, Health } from "../daemon/api.ts";
import type { ReaperEvent } from "../store/events.ts";
import type { ContainerRecord, ExitStatus } from "../types.ts";
import { signalName } from "../signal_names.ts";
import { formatTable } from "./table.ts";

/** "-" while running, "0", "137 (SIGKILL)", or "unknown". */
export function exitText(exit: ExitStatus | null): string {
  if (exit === null) return "-";
  if (!exit.known || exit.code === null) return "unknown";
  const how = [
    ...(exit.signal === null ? [] : [signalName(exit.signal)]),
    ...(exit.oomKilled === true ? ["OOM"] : []),
  ];
  return how.length === 0 ? String(exit.code) : `${exit.code} (${how.join(", ")})`;
}

/** A duration in its largest sensible unit: "850ms", "42s", "5m", "3h", "2d". */
export function duration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)}ms`;
  if (abs < 60_000) return `${Math.floor(abs / 1000)}s`;
  if (abs < 3_600_000) return `${Math.floor(abs / 60_000)}m`;
  if (abs < 86_400_000) return `${Math.floor(abs / 3_600_000)}h`;
  return `${Math.floor(abs / 86_400_000)}d`;
}

/** "5m ago" for a past time. */
export function ago(at: number, now: number): string {
  return now - at < 1000 ? "just now" : `${duration(now - at)} ago`;
}

/** "in 4s" for a future time, "now" when due. */
export function dueIn(at: number, now: number): string {
  return at <= now ? "now" : `in ${duration(at - now)}`;
}

/** Shortens text for a table cell, keeping it on one line. */
export function cell(text: string, max = 60): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** `reaperd ps`: one row per container. */
export function formatRecordTable(records: readonly ContainerRecord[], now: number): string {
  if (records.length === 0) return "no containers\n";
  return formatTable(
    ["ID", "NAME", "RUNTIME", "STATE", "PID", "PPID", "EXIT", "UPDATED"],
    records.map((r) => [
      r.id,
      r.name,
      r.runtime,
      r.state,
      String(r.pid),
      String(r.ppid),
      exitText(r.exit),
      ago(r.updatedAt, now),
    ]),
  );
}

/** `reaperd inspect`: one record as aligned `key: value` lines. */
export function formatRecord(r: ContainerRecord, now: number): string {
  const rows: [string, string][] = [
    ["id", r.id],
    ["name", r.name],
    ["runtime", r.runtime],
    ["state", r.state],
    ["pid", `${r.pid} (start time ${r.startTime})`],
    ["ppid", `${r.ppid} (start time ${r.pStartTime})`],
    ["state dir", r.stateDir],
    ["exit", exitText(r.exit)],
  ];
  if (r.exit !== null) {
    rows.push(["exit reason", r.exit.reason], ["exited", ago(r.exit.at, now)]);
  }
  rows.push(
    ["mounts", r.mounts.length === 0 ? "-" : r.mounts.join(", ")],
    ["paths", r.paths.length === 0 ? "-" : r.paths.join(", ")],
    ["created", `${new Date(r.createdAt).toISOString()} (${ago(r.createdAt, now)})`],
    ["updated", `${new Date(r.updatedAt).toISOString()} (${ago(r.updatedAt, now)})`],
  );
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width + 1)}  ${v}`).join("\n") + "\n";
}

/** `reaperd gc ls`: one row per container in GC. */
export function formatGcTable(statuses: readonly GcStatus[], now: number): string {
  if (statuses.length === 0) return "no containers in GC\n";
  return formatTable(
    ["ID", "RUNTIME", "ATTEMPTS", "NEXT", "PROC", "LAST STEP", "LAST ERROR"],
    statuses.map(({ record, entry }) => [
      record.id,
      record.runtime,
      String(entry.attempts),
      dueIn(entry.nextAttemptAt, now),
      entry.procState ?? "-",
      entry.lastStep ?? "-",
      entry.lastError === null ? "-" : cell(entry.lastError),
    ]),
  );
}

/** `reaperd gc status`: one line about a container in GC. */
export function formatGcStatus({ record, entry }: GcStatus, now: number): string {
  let text = `${record.id}: in GC since ${ago(entry.addedAt, now)}, ${entry.attempts} attempt${
    entry.attempts === 1 ? "" : "s"
  }, next ${dueIn(entry.nextAttemptAt, now)}`;
  if (entry.lastStep !== null) {
    text += `; last failed step ${entry.lastStep}`;
    if (entry.lastError !== null) text += `: ${cell(entry.lastError, 200)}`;
  }
  if (entry.procState !== null) text += `; process state ${entry.procState}`;
  return text + "\n";
}

/** `reaperd events`: one line per event. */
export function formatEvent(e: ReaperEvent): string {
  const detail = Object.keys(e.detail).length === 0
    ? ""
    : `  ${cell(JSON.stringify(e.detail), 160)}`;
  return `${String(e.seq).padStart(6)}  ${new Date(e.at).toISOString()}  ${e.kind.padEnd(10)}  ${
    (e.state ?? "-").padEnd(8)
  }  ${e.id ?? "-"}${detail}\n`;
}

/** `reaperd health`: aligned `key: value` lines. */
export function formatHealth(h: Health): string {
  const rows: [string, string][] = [
    ["status", h.status],
    ["version", h.version],
    ["uptime", duration(h.uptimeSeconds * 1000)],
    ["monitored", String(h.monitored)],
    ["held fifos", String(h.held)],
    ["in gc", String(h.gc)],
    ["pending writes", String(h.pendingWrites)],
  ];
  for (const reason of h.reasons) rows.push(["reason", reason]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width + 1)}  ${v}`).join("\n") + "\n";
}
