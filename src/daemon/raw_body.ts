/**
 * Responses whose body is bytes already in memory and shared between clients (the `ps`
 * snapshot's JSON). The connection writes those bytes as they are, without reading the body
 * stream into a copy for each client; anything else reading the response still gets them
 * through its body.
 *
 * @module
 */

const raw = new WeakMap<Response, Uint8Array<ArrayBuffer>>();

/** A response with `bytes` as its body; `bytes` must not change afterwards. */
export function bytesResponse(bytes: Uint8Array<ArrayBuffer>, init: ResponseInit): Response {
  const body = new ReadableStream<Uint8Array<ArrayBuffer>>({
    pull(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
  const response = new Response(body, init);
  raw.set(response, bytes);
  return response;
}

/** The bytes a {@linkcode bytesResponse} was made with, or undefined for any other response. */
export function rawBody(response: Response): Uint8Array<ArrayBuffer> | undefined {
  return raw.get(response);
}
