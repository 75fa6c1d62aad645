/**
 * The path helper's entry point (see path_helper_serve.ts): `deno run --allow-all
 * path_helper_main.ts`. Nothing imports it, so that no bundle ever runs it by accident.
 *
 * @module
 */

import { servePathHelper } from "./path_helper_serve.ts";

if (import.meta.main) Deno.exit(await servePathHelper());
