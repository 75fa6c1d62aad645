/**
 * The `oci` kind, every runtime's by default: runc, crun and the like, which keep their state
 * under `--root <stateDir>/<runtime>` and share the default OCI plan.
 *
 * @module
 */

import { ociPlan } from "../oci_steps.ts";
import { defineKind } from "./kind.ts";

/** runc, crun and the runtimes that behave like them. */
export const oci = defineKind({
  name: "oci",
  plan: ociPlan,
  root: (runtime, stateDir) => `${stateDir}/${runtime}`,
  // runc: "container does not exist"; crun: "error opening file `<root>/<id>/status`: No such
  // file or directory"; iSulad also shields "chdir <workdir> failed" (the state dir is gone).
  notThere: [
    /does not exist/i,
    /no such container/i,
    /error opening file `[^`]*\/status`: No such file or directory/,
    /chdir .* failed/,
  ],
  // runc: "container not running"; crun and others report the process being gone.
  notRunning: [/not running/i, /process already finished/i, /no such process/i],
});
