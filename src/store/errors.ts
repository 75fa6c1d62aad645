/**
 * The errors the store throws, one class per way a caller must react: a missing container
 * (HTTP 404), a transition the container's state forbids (HTTP 409), input the store refuses
 * to write (HTTP 400), and a write the KV file could not take right now (retry later, HTTP 503).
 *
 * @module
 */

import type { ContainerState } from "../types.ts";

/** Base class of every error the store throws on purpose. */
export class StoreError extends Error {
  /** True when the same call may succeed if made again later. */
  readonly retryable: boolean;

  /**
   * @param message One line saying what went wrong.
   * @param retryable Whether the same call may succeed later.
   * @param options The underlying error, if any.
   */
  constructor(message: string, retryable: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreError";
    this.retryable = retryable;
  }
}

/** The container has no record (HTTP 404). */
export class NotFoundError extends StoreError {
  /** The id that was looked up. */
  readonly id: string;

  /** @param id The container id that has no record. */
  constructor(id: string) {
    super(`no such container: ${id}`, false);
    this.name = "NotFoundError";
    this.id = id;
  }
}

/**
 * The container's state does not allow the transition asked for (HTTP 409): registering a
 * running container again with another pid, stopping a running one, and the like.
 */
export class ConflictError extends StoreError {
  /** The container id. */
  readonly id: string;
  /** The state the container was in. */
  readonly state: ContainerState;

  /**
   * @param id The container id.
   * @param state The state that forbids the transition.
   * @param message One line saying what was refused.
   */
  constructor(id: string, state: ContainerState, message: string) {
    super(message, false);
    this.name = "ConflictError";
    this.id = id;
    this.state = state;
  }
}

/** The store refuses to write what it was given (HTTP 400): a bad id, a value too large. */
export class StoreInputError extends StoreError {
  /** @param message One line naming the bad field. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, false, options);
    this.name = "StoreInputError";
  }
}

/**
 * The KV file could not take the write now ("database is locked", disk full, I/O error, a
 * closed handle, or a record that kept changing under us). Nothing was half-written: every
 * write is one atomic commit. Retry later (HTTP 503).
 */
export class StoreUnavailableError extends StoreError {
  /** @param message One line saying which write failed and why. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, true, options);
    this.name = "StoreUnavailableError";
  }
}
