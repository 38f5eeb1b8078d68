// The balancer's own answers: short text/plain responses, on an HTTP response or on a raw socket.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { closeAfterResponse, hasBody } from './requests.js'

/**
 * Answers a request with a short text/plain body (`message` and a newline). Returns the body's
 * length in bytes, as sent: 0 for a HEAD.
 */
export function answer(req: IncomingMessage, res: ServerResponse, status: number, message: string, close = false): number {
  const body = `${message}\n`
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    // The body may echo what a client sent (a transfer coding, say): never sniffed as HTML.
    'x-content-type-options': 'nosniff',
  }
  // A body the client is still sending would have to be read to the end to keep the
  // connection; closing it is cheaper (nginx does the same on an early error).
  if (close || (hasBody(req) && !req.complete)) {
    headers.connection = 'close'
    closeAfterResponse(req.socket)
  }
  res.writeHead(status, headers)
  if (req.method === 'HEAD') {
    res.end()
    return 0
  }
  res.end(body)
  return headers['content-length'] as number
}

/**
 * The head of an answer written on a raw socket, one that closes its connection: `status` is
 * the whole status, `404 Not Found`; `extra` holds header lines of its own, each ending in CRLF.
 */
export function rawHead(status: string, length: number, extra = ''): string {
  return (
    `HTTP/1.1 ${status}\r\n${extra}Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n` +
    `Content-Length: ${length}\r\nConnection: close\r\n\r\n`
  )
}

/**
 * Writes a whole short answer on a raw client socket (an upgrade or a CONNECT, which Node hands
 * over without a response object), then ends it; `then` runs once it is written.
 */
export function answerRaw(socket: Duplex, status: string, message: string, extra = '', then?: () => void): void {
  const body = `${message}\n`
  socket.end(rawHead(status, Buffer.byteLength(body), extra) + body, then)
}
