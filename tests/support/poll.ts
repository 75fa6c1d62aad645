/**
 * Test support: wait for a condition that the daemon or a process makes true in its own time.
 *
 * @module
 */

/** Calls `fn` every 50 ms until it returns something other than null; throws after the timeout. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | null> | T | null,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
