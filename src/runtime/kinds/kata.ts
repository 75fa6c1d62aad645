/**
 * The `kata` kind: kata-runtime keeps its state where its own config says and takes no
 * `--root` (as iSulad calls it); otherwise it answers like an OCI runtime.
 *
 * @module
 */

import { ociPlan } from "../oci_steps.ts";
import { defineKind } from "./kind.ts";

/** kata-runtime and its flavours (kata-qemu, kata-fc…). */
export const kata = defineKind({
  name: "kata",
  plan: ociPlan,
  root: () => null,
  notThere: [/does not exist/i, /no such container/i, /chdir .* failed/],
  notRunning: [/not running/i, /process already finished/i, /no such process/i],
});
