/** Reading a request body whole, within a per-request limit and the budget of all requests. */
import type { IncomingMessage } from 'node:http'
import type { BodyAccount } from './body-budget.js'
import { BodyBudgetError, BodyTooLargeError } from './errors.js'

/**
 * Reads a request body into one buffer, at most `limit` bytes, counting each chunk against
 * `account`. Past the limit it rejects with `BodyTooLargeError`, and when the budget of all
 * requests is spent with `BodyBudgetError`; either way it gives its bytes back and discards
 * the rest, so a 413 or 503 can still be written. A client that goes away mid-body rejects
 * with Node's `aborted` error, and gives its bytes back too.
 */
export function readBody(req: IncomingMessage, limit: number, account: BodyAccount): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const fail = (err: Error): void => {
      req.off('data', onData)
      req.resume()
      account.release()
      reject(err)
    }
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > limit) return fail(new BodyTooLargeError(`request body is over ${limit} bytes`))
      if (!account.take(chunk.length)) return fail(new BodyBudgetError())
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', fail)
  })
}
