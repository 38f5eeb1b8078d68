// The checks a request passes before any upstream sees it, and the marks on a connection that a response ends.
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

/**
 * What the balancer checks in a request before any upstream sees it: the cases Node's parser
 * accepts but a proxy must not pass on as they are, because the upstream could read the
 * request differently from the balancer. Each refusal closes the connection, as nginx does for
 * a malformed request, since what follows on it can no longer be trusted.
 */

/** Marks a client connection whose current response ends it. */
const kClosing = Symbol('switchyard.closing')
type Marked = Duplex & { [kClosing]?: true }

/**
 * Notes that a response now on its way ends `socket` (`Connection: close`). Node has often
 * parsed the requests pipelined behind by then and hands them over all the same; none of them
 * may reach an upstream, or a request the client sent after a refused one would be served.
 */
export function closeAfterResponse(socket: Duplex): void {
  ;(socket as Marked)[kClosing] = true
}

/** Whether a response already sent or being sent on `socket` ends it (see closeAfterResponse). */
export function closing(socket: Duplex): boolean {
  return (socket as Marked)[kClosing] === true
}

/**
 * Whether a response is still due on `socket` before anything else may be written to it: one
 * being written or queued (Node's `_httpMessage`), or one that ends the connection. Node hands
 * an upgrade or a CONNECT the raw socket even then; whatever is written on it would then be
 * read as the answer to an earlier request (RFC 9110 §7.8: clients do not pipeline those).
 */
export function answerDue(socket: Duplex): boolean {
  const current = (socket as Duplex & { _httpMessage?: object | null })._httpMessage
  return closing(socket) || (current !== null && current !== undefined)
}

/** Whether the request carries a body: a Content-Length above 0 or any Transfer-Encoding. */
export function hasBody(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding']
  if (te !== undefined) return true
  const cl = req.headers['content-length']
  return cl !== undefined && cl !== '0'
}

/** How many times a header appears in the raw request, for duplicates Node folds silently. */
export function countHeader(req: IncomingMessage, lowerName: string): number {
  let n = 0
  const raw = req.rawHeaders
  // Runs on every request: only names of the right length are lower-cased (each a new string).
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) n++
  }
  return n
}

/** A request the balancer answers itself: status and one line of text. */
export interface Refusal {
  status: 400 | 501 | 505
  message: string
}

/** `http://` or `https://`, then an authority without userinfo, then the rest of the target. */
const ABSOLUTE = /^https?:\/\/([^/?#@\s]+)([/?][^#]*)?$/i
/** A `host[:port]` as RFC 3986 allows it: a name or IPv4 address, or an IPv6 literal in brackets. */
const AUTHORITY = /^(?:[A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\])(?::\d{0,5})?$/

/**
 * Rewrites an absolute-form target (`GET http://host/path`) to origin-form, with `Host` taken
 * from the target: RFC 9112 §3.2.2 says the target's authority wins over the Host header, and
 * nginx does the same rewrite. Otherwise the upstream would read one host while the balancer's
 * own headers (`X-Forwarded-Host`), hash keys and logs read another. Returns false when the
 * target is absolute-form but not a usable http(s) URL.
 */
function toOriginForm(req: IncomingMessage): boolean {
  const m = ABSOLUTE.exec(req.url as string)
  if (m === null || !AUTHORITY.test(m[1] as string)) return false
  const rest = m[2] ?? '/'
  req.url = rest.startsWith('?') ? `/${rest}` : rest
  // The scheme's default port is left out, as a client leaves it out of Host (RFC 9110 §7.2).
  req.headers.host = (m[1] as string).replace(/^https/i.test(m.input) ? /:443$/ : /:80$/, '')
  return true
}

/**
 * Checks a request's framing and target, fixing what can be fixed (an absolute-form target),
 * and returns the answer for what cannot; undefined when the request may be forwarded.
 *
 * - A version other than 1.0 or 1.1: Node's parser takes `HTTP/0.9` and `HTTP/2.0` request
 *   lines, which the balancer would forward as HTTP/1.1. As nginx 1.22 answers them: 505 for
 *   `HTTP/2.0`, 400 for `HTTP/0.9`.
 * - Two `Host` headers: Node keeps the first silently; which one is meant is unknowable (400).
 * - No `Host` on HTTP/1.1, or an empty one (RFC 9112 §3.2; 400, as nginx).
 * - `Transfer-Encoding` on HTTP/1.0: RFC 9112 §6.1 calls that framing faulty (400, as nginx).
 * - Two `Transfer-Encoding` lines: nginx answers 400; Node would join them into one value.
 * - Any coding but `chunked` alone: the balancer would pass a gzip-coded body on labelled
 *   `chunked` (it de-chunks and re-chunks); nginx answers 501, and so does this.
 * - A target that is neither origin-form (`/path`), `*` for OPTIONS, nor an http(s) URL: 400.
 */
export function refusal(req: IncomingMessage): Refusal | undefined {
  if (req.httpVersionMajor > 1) {
    return { status: 505, message: `505 HTTP Version Not Supported: HTTP/${req.httpVersion}; use HTTP/1.1` }
  }
  if (req.httpVersionMajor < 1) return { status: 400, message: `400 Bad Request: HTTP/${req.httpVersion} requests are not served` }
  const hosts = countHeader(req, 'host')
  if (hosts > 1) return { status: 400, message: '400 Bad Request: more than one Host header' }
  // Node's own check (requireHostHeader) is off, so that this answer can close the connection
  // before anything pipelined behind is forwarded. An empty Host is refused too, as by nginx.
  if (hosts === 0 ? req.httpVersion === '1.1' : req.headers.host === '') {
    return { status: 400, message: '400 Bad Request: an HTTP/1.1 request needs a Host header, and a Host needs a name' }
  }
  const te = req.headers['transfer-encoding']
  if (te !== undefined) {
    if (req.httpVersion === '1.0') return { status: 400, message: '400 Bad Request: Transfer-Encoding in an HTTP/1.0 request' }
    if (countHeader(req, 'transfer-encoding') > 1)
      return { status: 400, message: '400 Bad Request: more than one Transfer-Encoding header' }
    if (te.trim().toLowerCase() !== 'chunked') {
      return { status: 501, message: `501 Not Implemented: transfer coding ${JSON.stringify(te)} is not supported, only chunked` }
    }
  }
  const url = req.url as string
  if (url.startsWith('/') || (url === '*' && req.method === 'OPTIONS') || toOriginForm(req)) return undefined
  return { status: 400, message: '400 Bad Request: the request target is not a path, nor an http:// URL' }
}
