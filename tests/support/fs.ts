/**
 * Test support: the filesystem as a test checks it, and the system commands (mount, umount…)
 * a test runs to set it up.
 *
 * @module
 */

import { isMountPoint } from "../../src/sys/mounts.ts";

/** True when something (a symlink included) is at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs a command (mount, umount…) and throws with its stderr when it fails. */
export async function runOk(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** For `finally`: unmounts `path` (lazily if it is still busy) until nothing is mounted there. */
export async function forceUnmount(path: string): Promise<void> {
  for (let i = 0; i < 8 && isMountPoint(path); i++) {
    await runOk("umount", "-l", path).catch(() => {});
  }
}
