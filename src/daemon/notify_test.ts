import assert from "node:assert/strict";
import { createNotifier, notifyAddress, watchdogInterval } from "./notify.ts";

const decoder = new TextDecoder();

/** A receiving datagram socket, as systemd's notify socket would be. */
async function withReceiver(
  path: string,
  fn: (next: () => Promise<string>) => Promise<void>,
): Promise<void> {
  const listener = Deno.listenDatagram({ transport: "unixpacket", path });
  try {
    await fn(async () => decoder.decode((await listener.receive())[0]));
  } finally {
    listener.close();
  }
}

function env(vars: Record<string, string>) {
  return (name: string) => vars[name];
}

Deno.test("notifyAddress() maps @abstract names to a leading NUL and refuses relative paths", () => {
  assert.equal(notifyAddress("/run/systemd/notify"), "/run/systemd/notify");
  assert.equal(notifyAddress("@sd-notify"), "\0sd-notify");
  assert.equal(notifyAddress("relative"), null);
  assert.equal(notifyAddress(""), null);
  assert.equal(notifyAddress(undefined), null);
});

Deno.test("watchdogInterval() is half of WATCHDOG_USEC, for this pid only", () => {
  assert.equal(watchdogInterval(env({ WATCHDOG_USEC: "30000000" }), 42), 15000);
  assert.equal(watchdogInterval(env({ WATCHDOG_USEC: "30000000", WATCHDOG_PID: "42" }), 42), 15000);
  assert.equal(watchdogInterval(env({ WATCHDOG_USEC: "30000000", WATCHDOG_PID: "7" }), 42), null);
  assert.equal(watchdogInterval(env({ WATCHDOG_USEC: "0" }), 42), null);
  assert.equal(watchdogInterval(env({ WATCHDOG_USEC: "x" }), 42), null);
  assert.equal(watchdogInterval(env({}), 42), null);
});

Deno.test("createNotifier() sends READY, STATUS, WATCHDOG and STOPPING to a path socket", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/notify.sock`;
    await withReceiver(path, async (next) => {
      const n = createNotifier({ getEnv: env({ NOTIFY_SOCKET: path }), unsetEnvironment: false });
      try {
        assert.equal(n.enabled, true);
        await n.ready("restored 3 containers");
        assert.equal(await next(), "READY=1\nSTATUS=restored 3 containers");
        await n.status("two\nlines");
        assert.equal(await next(), "STATUS=two lines");
        await n.watchdog();
        assert.equal(await next(), "WATCHDOG=1");
        await n.stopping();
        assert.equal(await next(), "STOPPING=1");
      } finally {
        n.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createNotifier() reaches an abstract @socket", async () => {
  const name = `reaperd-test-${crypto.randomUUID()}`;
  await withReceiver(`\0${name}`, async (next) => {
    const n = createNotifier({
      getEnv: env({ NOTIFY_SOCKET: `@${name}` }),
      unsetEnvironment: false,
    });
    try {
      await n.ready();
      assert.equal(await next(), "READY=1");
    } finally {
      n.close();
    }
  });
});

Deno.test("startWatchdog() pings every WATCHDOG_USEC/2 while healthy", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/notify.sock`;
    await withReceiver(path, async (next) => {
      const n = createNotifier({
        getEnv: env({ NOTIFY_SOCKET: path, WATCHDOG_USEC: "40000", WATCHDOG_PID: "99" }),
        pid: 99,
        unsetEnvironment: false,
      });
      try {
        assert.equal(n.watchdogIntervalMs, 20);
        const started = Date.now();
        const stop = n.startWatchdog(() => true);
        assert.equal(await next(), "WATCHDOG=1");
        assert.equal(await next(), "WATCHDOG=1");
        assert.ok(Date.now() - started >= 30, "two pings take at least about two periods");
        stop();
      } finally {
        n.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startWatchdog() stays silent while unhealthy", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/notify.sock`;
    await withReceiver(path, async (next) => {
      const n = createNotifier({
        getEnv: env({ NOTIFY_SOCKET: path, WATCHDOG_USEC: "20000" }),
        unsetEnvironment: false,
      });
      try {
        let healthy = false;
        const stop = n.startWatchdog(() => healthy);
        await new Promise((r) => setTimeout(r, 60));
        await n.status("marker");
        // The marker comes first: no ping was sent while unhealthy.
        assert.equal(await next(), "STATUS=marker");
        healthy = true;
        assert.equal(await next(), "WATCHDOG=1");
        stop();
      } finally {
        n.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createNotifier() is a no-op outside systemd and survives a vanished socket", async () => {
  const off = createNotifier({ getEnv: env({}), unsetEnvironment: false });
  assert.equal(off.enabled, false);
  assert.equal(off.watchdogIntervalMs, null);
  await off.ready();
  off.startWatchdog()();
  off.close();

  const gone = createNotifier({
    getEnv: env({ NOTIFY_SOCKET: "/nonexistent/notify.sock" }),
    unsetEnvironment: false,
  });
  await gone.ready(); // logged, not thrown
  gone.close();
});

Deno.test("createNotifier() removes NOTIFY_SOCKET from the environment by default", () => {
  Deno.env.set("NOTIFY_SOCKET", "/nonexistent/notify.sock");
  Deno.env.set("WATCHDOG_USEC", "1000000");
  try {
    const n = createNotifier();
    assert.equal(n.enabled, true);
    assert.equal(Deno.env.get("NOTIFY_SOCKET"), undefined);
    assert.equal(Deno.env.get("WATCHDOG_USEC"), undefined);
    n.close();
  } finally {
    Deno.env.delete("NOTIFY_SOCKET");
    Deno.env.delete("WATCHDOG_USEC");
  }
});
