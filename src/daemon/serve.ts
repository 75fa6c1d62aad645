/**
 * `reaperd serve`: the daemon in the foreground. Wires the parts together, restores in the
 * seed's order, serves the socket API, talks to systemd, reloads what it safely can on SIGHUP,
 * ignores SIGUSR1/SIGUSR2/SIGALRM, and shuts down cleanly on SIGTERM/SIGINT.
 *
 * @module
 */

import type { Config, HttpConfig } from "../config.ts";
import { configureLogging, getLogger } from "../log.ts";
import { RuntimeCleaner } from "../runtime/cleaner.ts";
import { defaultCleanupSettings } from "../runtime/config.ts";
import { StateLayout } from "../identity.ts";
import { raiseFdLimit } from "../sys/fd_limit.ts";
import { takeListenFds } from "../sys/listen_fds.ts";
import { startHttpServer } from "./http.ts";
import { connectionBudget, currentSoftFdLimit } from "./fd_budget.ts";
import { fifoReadEnds } from "./fd_store.ts";
import { Liveness } from "./liveness.ts";
import { createNotifier } from "./notify.ts";
import { prioritizeReads } from "./read_priority.ts";
import { applyReload } from "./reload.ts";
import { installSignalHandlers } from "./signals.ts";
import { startRetention } from "./retention.ts";
import { ReaperService, VERSION } from "./service.ts";
import { type OpenedStore, openStore, StoreOpenError } from "./store_file.ts";
import { errorMessage } from "../error_message.ts";

const log = getLogger("daemon");
/** A key nothing writes: reading it is the watchdog's store probe. */
const LIVENESS_KEY: Deno.KvKey = ["liveness-probe"];

/** Options of {@linkcode serve}. */
export interface ServeOptions {
  /**
   * Reads the configuration again for SIGHUP (the file and the flags, as at start). Without
   * it, SIGHUP is logged and ignored.
   */
  reload?: () => Promise<Config>;
}

/**
 * Runs the daemon until SIGTERM or SIGINT. Resolves to the process exit code: 0 after a clean
 * shutdown, 1 when it could not start.
 */
export async function serve(config: Config, options: ServeOptions = {}): Promise<number> {
  configureLogging({ level: config.logLevel });
  let running = config;
  let httpLimits: HttpConfig = { ...config.http };
  let ready = false;
  const signals = installSignalHandlers({
    log,
    onReload: async () => {
      if (options.reload === undefined) {
        log.warn("SIGHUP: no config file to read again; ignored");
        return;
      }
      if (!ready) {
        log.warn("SIGHUP: still starting; the configuration is read again only once ready");
        return;
      }
      const outcome = applyReload(running, await options.reload(), {
        setLogLevel: (level) => configureLogging({ level }),
        setHttpLimits: (limits) => httpLimits = limits,
      });
      running = outcome.config;
      log.info("SIGHUP: configuration read again; applied: {applied}", {
        applied: outcome.applied.join(", ") || "nothing changed",
      });
      if (outcome.needsRestart.length > 0) {
        log.warn("SIGHUP: changed but only taken at start, restart to apply: {keys}", {
          keys: outcome.needsRestart.join(", "),
        });
      }
    },
  });
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
    signals.remove();
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
      layout: new StateLayout(config.stateRoot, config.stateDirPattern),
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
      log: getLogger("service"),
      gcLog: getLogger("gc"),
      storeProblems: opened.problems,
      readEnds,
    });

    const restored = await service.restore();
    log.info(
      "restored: {monitored} monitored, {exited} exited while down, {resumed} cleanups resumed",
      restored,
    );
    const svc = service;
    // Exits first: requests wait for exits being recorded; reads share one snapshot for `ps`.
    const api = prioritizeReads(service, { version: () => store.lastSeq });
    server = await startHttpServer(api, {
      path: config.socket,
      idleTimeoutMs: () => httpLimits.idleTimeoutMs,
      responseTimeoutMs: () => httpLimits.responseTimeoutMs,
      exits: svc,
      // Asked at every accept: the counts it needs, not the whole health.
      maxConnections: () =>
        connectionBudget({
          softLimit: currentSoftFdLimit(),
          containers: svc.fifoReadEnds,
          cleanupConcurrency: config.gc.concurrency,
          configured: httpLimits.maxConnections,
        }),
    });
    const status = () => {
      const h = svc.health();
      return `${h.status}: ${h.monitored} monitored, ${h.gc} in GC` +
        (h.pendingWrites > 0 ? `, ${h.pendingWrites} exits not yet durable` : "");
    };
    await notifier.ready(status());
    if (notifier.watchdogIntervalMs !== null) {
      // Fed only while the epoll loop and the store answer, from a timer on the main thread.
      const openKv = opened.kv;
      const liveness = new Liveness({
        loop: service.exitLoop,
        probeStore: () => openKv.get(LIVENESS_KEY),
        staleMs: Math.max(1000, notifier.watchdogIntervalMs * 1.5),
        log: getLogger("watchdog"),
      });
      stopWatchdog = notifier.startWatchdog(() => liveness.check());
    }
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

    ready = true;
    const signal = await signals.terminated;
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
    signals.remove();
  }
}
