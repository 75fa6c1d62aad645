/**
 * The durable store of reaperd: container records, the GC list and the event log in one
 * Deno KV file. The only code that knows the KV keys.
 *
 * @module
 */

export * from "./errors.ts";
export * from "./store.ts";
