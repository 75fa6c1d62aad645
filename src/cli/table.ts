/**
 * Aligned plain-text tables for people (`--json` is for scripts).
 *
 * @module
 */

/**
 * Formats rows under headers, columns padded to their widest cell and separated by two
 * spaces; the last column is not padded. Returns the text with a trailing newline.
 *
 * @example
 * ```ts
 * import { formatTable } from "./table.ts";
 * formatTable(["ID", "STATE"], [["web-1", "running"]]);
 * // "ID     STATE\nweb-1  running\n"
 * ```
 */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [headers, ...rows].map(line).join("\n") + "\n";
}
