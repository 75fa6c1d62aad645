/**
 * Test support: a small filesystem for the store's KV file, and a filler that makes it full,
 * so that a test can take the store's disk away from the daemon and give it back.
 *
 * @module
 */

import { runOk } from "./fs.ts";

/** Mounts an 8 MiB tmpfs (mode 0700) at `<dir>/kvfs`; returns its path. */
export async function mountSmallDisk(dir: string): Promise<string> {
  const fs = `${dir}/kvfs`;
  await Deno.mkdir(fs);
  await runOk("mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", fs);
  return fs;
}

/** Unmounts what {@linkcode mountSmallDisk} mounted, lazily when it is still busy. */
export async function unmountSmallDisk(fs: string): Promise<void> {
  await runOk("umount", fs).catch(() => runOk("umount", "-l", fs));
}

/** Writes zeros into `path` until the filesystem says it is full; returns the bytes written. */
export function fillDisk(path: string): number {
  const file = Deno.openSync(path, { write: true, create: true });
  const chunk = new Uint8Array(64 * 1024);
  let total = 0;
  try {
    for (;;) {
      try {
        total += file.writeSync(chunk);
      } catch (e) {
        if (e instanceof Error && /No space left/.test(e.message)) break;
        throw e;
      }
    }
    // Smaller writes take the last partial block.
    for (const size of [4096, 512, 1]) {
      try {
        for (;;) total += file.writeSync(chunk.subarray(0, size));
      } catch {
        // Full at this size too.
      }
    }
  } finally {
    file.close();
  }
  return total;
}
