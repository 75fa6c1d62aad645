/**
 * The runtime kinds reaperd ships with. A kind is one file in this folder; importing this
 * module defines them all.
 *
 * @module
 */

export { DEFAULT_KIND, defineKind, kindNamed, kindNames, type RuntimeKind } from "./kind.ts";
export { oci } from "./oci.ts";
export { kata } from "./kata.ts";
