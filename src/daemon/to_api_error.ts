/**
 * How an error from one of the daemon's parts is answered: the HTTP status a client sees.
 *
 * @module
 */

import {
  ConflictError,
  NotFoundError,
  StoreInputError,
  StoreUnavailableError,
} from "../store/errors.ts";
import { ExitFifoError } from "../supervisor/exit_fifo.ts";
import { ApiError } from "./api.ts";
import { errorMessage } from "../error_message.ts";

/** Maps the parts' errors to the status a client should see. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof ExitFifoError || error instanceof StoreInputError) {
    return new ApiError(400, error.message);
  }
  if (error instanceof NotFoundError) return new ApiError(404, error.message);
  if (error instanceof ConflictError) return new ApiError(409, error.message);
  if (error instanceof StoreUnavailableError) return new ApiError(503, error.message);
  if (error instanceof Error && error.name === "SysError") return new ApiError(400, error.message);
  return new ApiError(500, errorMessage(error));
}
