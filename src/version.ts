/**
 * reaperd's version: `reaperd --version`, `GET /v1/health` and the start-up log line.
 *
 * @module
 */

/** reaperd's version. */
export const VERSION = "0.1.0";
