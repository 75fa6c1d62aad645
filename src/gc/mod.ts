/**
 * The garbage collector of reaperd: a due-time scheduler that retries each container's cleanup
 * with exponential backoff until it succeeds, across restarts. How to clean is the business of
 * a {@linkcode Cleaner} (see `src/runtime/`).
 *
 * @module
 */

export * from "./backoff.ts";
export * from "./cleaner.ts";
export * from "./collector.ts";
export * from "./due_queue.ts";
