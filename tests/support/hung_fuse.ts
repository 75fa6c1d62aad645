/**
 * Test support: a FUSE filesystem that never answers a lookup (tests/support/fault_fuse_hang.c),
 * mounted on a temporary directory. Whatever looks a path up below it blocks for good, in D
 * state, until the server is killed; the server prints `held <pid>` for each such lookup.
 *
 * @module
 */

import assert from "node:assert/strict";
import { buildFuseHang, LineReader } from "./fault_util.ts";
import { forceUnmount } from "./fs.ts";

/** The hung filesystem and its server. */
export class HungFuse {
  /** Where it is mounted. */
  readonly mnt: string;
  #server: Deno.ChildProcess | undefined;
  #lines: LineReader;

  private constructor(mnt: string, server: Deno.ChildProcess) {
    this.mnt = mnt;
    this.#server = server;
    this.#lines = new LineReader(server.stdout);
  }

  /** Builds the server, mounts it on a new temporary directory, waits until it is ready. */
  static async start(): Promise<HungFuse> {
    const binary = await buildFuseHang();
    const mnt = await Deno.makeTempDir({ prefix: "reaperd-fault-fuse-" });
    const server = new Deno.Command(binary, { args: [mnt], stdin: "null", stdout: "piped" })
      .spawn();
    const fuse = new HungFuse(mnt, server);
    try {
      assert.equal(await fuse.nextLine(), "ready");
    } catch (e) {
      await fuse.dispose();
      throw e;
    }
    return fuse;
  }

  /** The server's next line (`held <pid>` once a lookup is held), or null at its end. */
  nextLine(): Promise<string | null> {
    return this.#lines.next();
  }

  /** Kills the server: the connection aborts and every held lookup fails. Idempotent. */
  async kill(): Promise<void> {
    await this.#lines.cancel();
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined) {
      server.kill("SIGKILL");
      await server.status;
    }
  }

  /** Detaches what is left mounted at {@linkcode mnt} (lazily: a dead FUSE mount stays busy). */
  async unmount(): Promise<void> {
    await forceUnmount(this.mnt);
  }

  /** For `finally`: kills the server, unmounts, removes the directory. */
  async dispose(): Promise<void> {
    await this.kill();
    await this.unmount();
    await Deno.remove(this.mnt, { recursive: true });
  }
}
