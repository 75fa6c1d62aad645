/**
 * The one-line text of whatever was thrown, for logs, step records and API errors.
 *
 * @module
 */

/** `error.message` for an Error, else the value as a string. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
