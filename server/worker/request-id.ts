/**
 * The request id: taken from X-Request-ID when it is sane (nginx's $request_id is 32 hex chars),
 * generated otherwise. It is put back on the request headers (so the app reads it like any header)
 * and on the response.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { REQUEST_ID } from '../bridge/wire.js'

export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  if (typeof given === 'string' && REQUEST_ID.test(given)) return given
  const id = randomUUID()
  req.headers['x-request-id'] = id
  return id
}

/** The request id of a request served by forkyard, for app code. */
export function requestId(req: IncomingMessage): string | undefined {
  const id = req.headers['x-request-id']
  return typeof id === 'string' ? id : undefined
}
