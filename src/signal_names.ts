/**
 * Names of the Linux signals a container is commonly killed by, for exit reasons and tables.
 *
 * @module
 */

const NAMES: Readonly<Record<number, string>> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  4: "SIGILL",
  6: "SIGABRT",
  7: "SIGBUS",
  8: "SIGFPE",
  9: "SIGKILL",
  10: "SIGUSR1",
  11: "SIGSEGV",
  12: "SIGUSR2",
  13: "SIGPIPE",
  14: "SIGALRM",
  15: "SIGTERM",
  24: "SIGXCPU",
  25: "SIGXFSZ",
  31: "SIGSYS",
};

/** A signal's name ("SIGKILL"), or "signal N" for one without a common name. */
export function signalName(signal: number): string {
  return NAMES[signal] ?? `signal ${signal}`;
}
