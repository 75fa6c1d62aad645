/**
 * A runtime kind that exists only for tests: it proves that a kind is one file. Its runtime
 * takes `--state <stateDir>/<runtime>.d` where oci takes `--root`, says "gone for good" when
 * the container is not there, and its plan is only the runtime delete.
 *
 * @module
 */

import { runtimeDelete } from "../oci_steps.ts";
import { defineKind } from "./kind.ts";

/** The test-only kind. */
export const testKind = defineKind({
  name: "test-only",
  plan: () => [runtimeDelete],
  root: (runtime, stateDir) => `${stateDir}/${runtime}.d`,
  notThere: [/gone for good/],
  notRunning: [],
});
