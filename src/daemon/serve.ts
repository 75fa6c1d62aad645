/**
 * `reaperd serve`: the daemon in the foreground. Wires the parts together, restores in the
 * seed's order, serves the socket API, talks to systemd, and shuts down cleanly on
 * SIGTERM/SIGINT.
 *
 * @module
 */

import type { Config } from "../config.ts";
import { Collector } from "../gc/collector.ts";
import { configureLogging, getLogger } from "../log.ts";
import { RuntimeCleaner } from "../runtime/cleaner.ts";
import { defaultCleanupSettings } from "../runtime/config.ts";
import { raiseFdLimit } from "../sys/fd_limit.ts";
import { takeListenFds } from "../sys/listen_fds.ts";
import { startHttpServer } from "./http.ts";
import { fifoReadEnds } from "./fd_store.ts";
import { createNotifier } from "./notify.ts";
import { startRetention } from "./retention.ts";
import { ReaperService, VERSION } from "./service.ts";
import { type OpenedStore, openStore, StoreOpenError } from "./store_file.ts";
import { errorMessage } from "../error_message.ts";

const log = getLogger("daemon");

/**
 * Runs the daemon until SIGTERM or SIGINT. Resolves to the process exit code: 0 after a clean
 * shutdown, 1 when it could not start.
 */
export async function serve(config: Config): Promise<number> {
  configureLogging({ level: config.logLevel });
  const notifier = createNotifier();
  // Before anything else can be started: the fds handed back must not leak into children.
  const handedBack = takeListenFds();
  const fdLimit = raiseFdLimit();
  let opened: OpenedStore;
  try {
    opened = await openStore({
      db: config.db,
      log,
      storeOptions: {
        maxEvents: config.eventLogMax,
        onWarning: (message, error) =>
          log.warn("store: {message}: {error}", { message, error: String(error) }),
      },
    });
  } catch (error) {
    log.fatal("{error}", {
      error: error instanceof StoreOpenError
        ? error.message
        : `cannot open the store ${config.db}: ${errorMessage(error)}`,
    });
    notifier.close();
    return 1;
  }

  const { store } = opened;
  let service: ReaperService | null = null;
  let server: Awaited<ReturnType<typeof startHttpServer>> | null = null;
  let stopWatchdog = () => {};
  let stopRetention = () => Promise.resolve();
  try {
    await Deno.mkdir(config.stateRoot, { recursive: true, mode: 0o700 });
    const cleaner = new RuntimeCleaner({
      runtimes: config.runtimes,
      settings: {
        ...defaultCleanupSettings(config.stateRoot),
        stepTimeoutMs: config.gc.stepTimeoutMs,
      },
    });
    const gcLog = getLogger("gc");
    const collector = new Collector({
      store,
      cleaner,
      concurrency: config.gc.concurrency,
      backoffBaseMs: config.gc.backoffBaseMs,
      backoffMaxMs: config.gc.backoffMaxMs,
      onEvent: (event) => gcLog.debug("{type} {id}", { ...event }),
    });
    const readEnds = fifoReadEnds(
      config.stateRoot,
      notifier.address,
      handedBack,
      getLogger("fd-store"),
    );
    service = new ReaperService({
      config,
      store,
      cleaner,
      collector,
      log: getLogger("service"),
      storeProblems: opened.problems,
      readEnds,
    });

    const restored = await service.restore();
    log.info(
      "restored: {monitored} monitored, {exited} exited while down, {resumed} cleanups resumed",
      restored,
    );
    server = await startHttpServer(service, { path: config.socket });
    const status = () => {
      const h = service!.health();
      return `${h.status}: ${h.monitored} monitored, ${h.gc} in GC` +
        (h.pendingWrites > 0 ? `, ${h.pendingWrites} exits not yet durable` : "");
    };
    await notifier.ready(status());
    stopWatchdog = notifier.startWatchdog();
    stopRetention = startRetention({
      store,
      retentionMs: config.stoppedRetentionMs,
      log: getLogger("retention"),
    });
    log.info(
      "reaperd {version} ready on {socket} (store {db}, state root {stateRoot}, fd limit {fdLimit})",
      {
        version: VERSION,
        socket: config.socket,
        db: config.db,
        stateRoot: config.stateRoot,
        fdLimit,
      },
    );
    const statusTimer = setInterval(() => notifier.status(status()), 10_000);
    Deno.unrefTimer(statusTimer);

    const signal = await waitForTermination();
    log.info("{signal} received: shutting down", { signal });
    clearInterval(statusTimer);
    await notifier.stopping("shutting down");
    return 0;
  } catch (error) {
    log.fatal("reaperd cannot run: {error}", {
      error: errorMessage(error),
    });
    return 1;
  } finally {
    stopWatchdog();
    await stopRetention();
    await server?.shutdown().catch(() => {});
    await service?.close().catch((e) => log.error("shutdown: {error}", { error: String(e) }));
    opened.close();
    notifier.close();
  }
}

function waitForTermination(): Promise<Deno.Signal> {
  return new Promise((resolve) => {
    const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
    const handlers = signals.map((signal) => {
      const handler = () => {
        for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
        resolve(signal);
      };
      Deno.addSignalListener(signal, handler);
      return [signal, handler] as const;
    });
  });
}
