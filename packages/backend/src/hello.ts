import type { IncomingMessage } from 'node:http'
import type { BufferedResponse } from './response.js'

/**
 * The representations of `GET /`, chosen from `Accept`. A browser gets a tiny HTML page
 * that names no favicon, so its own `GET /favicon.ico` does not take a turn of the
 * round-robin between two reloads (issue 12); curl and scripts keep the plain text line.
 */
export type HelloVariant = 'html' | 'text'

/**
 * Whether an `Accept` header names `text/html` itself with a q-value above 0. A wildcard range
 * (any type, or any text type) does not count: curl sends the any-type range and wants the
 * text it always got, while every browser names `text/html` when it loads a page (and not
 * when it loads an image). A q-value that is not a number counts as 0: not acceptable.
 */
export function acceptsHtml(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some(part => {
    if (!/^\s*text\/html\s*(;|$)/i.test(part)) return false
    const q = /;\s*q\s*=\s*([^;\s]*)/i.exec(part)
    return q === null || Number(q[1]) > 0
  })
}

/** The representation `req` gets: the page when its `Accept` names `text/html`, else the text line. */
export function helloVariant(req: IncomingMessage): HelloVariant {
  return acceptsHtml(req.headers.accept) ? 'html' : 'text'
}

/** `text` with the five characters that mean something in HTML written as references. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
}

/**
 * `GET /` in the chosen representation. Both say `Vary: Accept`, so a cache downstream (and
 * the backend's own, which keys them apart) never gives a browser the text or curl the page.
 * `<link rel="icon" href="data:,">` is an empty icon the page already holds: the browser
 * asks the server for none.
 */
export function helloResponse(variant: HelloVariant, id: string): BufferedResponse {
  const line = `Hello, World! from ${id}`
  if (variant === 'text') {
    return { status: 200, headers: { 'content-type': 'text/plain; charset=utf-8', vary: 'Accept' }, body: Buffer.from(line) }
  }
  const safe = escapeHtml(line)
  const page =
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n' +
    `<title>${safe}</title>\n<link rel="icon" href="data:,">\n</head>\n` +
    `<body>\n<p id="hello">${safe}</p>\n</body>\n</html>\n`
  return { status: 200, headers: { 'content-type': 'text/html; charset=utf-8', vary: 'Accept' }, body: Buffer.from(page) }
}
