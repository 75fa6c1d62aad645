/**
 * The answer to `GET /v1/containers[?limit=&after=]`: its query, and its body built without
 * holding the event loop. Ten thousand records are megabytes of JSON; serialized in one call
 * they would stop the exit path for tens of milliseconds, so the array is serialized a slice
 * at a time with a turn of the event loop between slices. The bytes are kept for as long as
 * the array lives: clients listing the same snapshot (see read_priority.ts) share them.
 *
 * @module
 */

import { idProblem } from "../identity.ts";
import type { ListPage } from "./api.ts";
import { badRequest, checkQuery } from "./validate.ts";

/** The largest page a client may ask for. */
export const MAX_PAGE = 10_000;
/** Records serialized per turn of the event loop. */
const SLICE = 250;

const encoder = new TextEncoder();
const built = new WeakMap<readonly unknown[], Promise<Uint8Array<ArrayBuffer>>>();

/** Parses `limit` (1…10,000) and `after` (a container id); both optional. */
export function parseListQuery(params: URLSearchParams): ListPage {
  checkQuery(params, ["limit", "after"]);
  const page: ListPage = {};
  const limit = params.get("limit");
  if (limit !== null) {
    if (!/^\d{1,5}$/.test(limit) || Number(limit) < 1 || Number(limit) > MAX_PAGE) {
      throw badRequest(`limit must be an integer from 1 to ${MAX_PAGE}, got ${limit.slice(0, 40)}`);
    }
    page.limit = Number(limit);
  }
  const after = params.get("after");
  if (after !== null) {
    const problem = idProblem(after);
    if (problem !== null) throw badRequest(`after: id ${problem}`);
    page.after = after;
  }
  return page;
}

const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * `JSON.stringify(items)` plus a newline, as bytes, serialized a slice at a time. The same
 * array gives the same (shared) bytes; do not change an array once it was serialized.
 */
export function serializeArray(items: readonly unknown[]): Promise<Uint8Array<ArrayBuffer>> {
  let bytes = built.get(items);
  if (bytes === undefined) {
    bytes = (async () => {
      const parts: string[] = [];
      for (let i = 0; i < items.length; i += SLICE) {
        if (i > 0) await turn();
        parts.push(items.slice(i, i + SLICE).map((item) => JSON.stringify(item)).join(","));
      }
      return encoder.encode(`[${parts.join(",")}]\n`);
    })();
    built.set(items, bytes);
  }
  return bytes;
}
