// The plain listener under --redirect-https: where a request goes on HTTPS (nginx `return 308 https://$host$request_uri`), and the HSTS header of HTTPS answers.

/** HTTP-01 challenges must be answered over plain HTTP (RFC 8555 §8.3): a CA never follows the redirect to a certificate it has not issued yet. */
const ACME = '/.well-known/acme-challenge/'

/** A host and optional port as a Host header may carry them, with no userinfo, path or space: anything else would move the Location elsewhere. */
const AUTHORITY = /^(?:[A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\])(?::\d{0,5})?$/

/** What a request to the plain listener gets under --redirect-https. */
export type Redirect = { location: string } | { forward: true } | { refuse: string }

/**
 * The HTTPS URL for a request that came over plain HTTP: the same host (its port replaced by
 * the HTTPS one, left out when that is 443) and the same path and query. ACME challenges are
 * forwarded as they are; a request whose Host is not a host is refused (400), since a Location
 * built from it could point anywhere. A request with no Host (HTTP/1.0) goes to the address it
 * reached, as nginx's `$host` falls back to the server's name.
 */
export function httpsRedirect(url: string, host: string | undefined, localAddress: string | undefined, httpsPort: number): Redirect {
  if (url.startsWith(ACME)) return { forward: true }
  // A socket already closed has no address: nothing to redirect to.
  const local = localAddress ?? ''
  const authority = host ?? (local.includes(':') ? `[${local}]` : local)
  if (!AUTHORITY.test(authority)) return { refuse: '400 Bad Request: the Host header is not a host to redirect to' }
  const name = authority.replace(/:\d*$/, '')
  const port = httpsPort === 443 ? '' : `:${httpsPort}`
  // `*` (OPTIONS *) has no path to keep: the site's root.
  return { location: `https://${name}${port}${url.startsWith('/') ? url : '/'}` }
}

/** `Strict-Transport-Security` for `--hsts T` (ms): whole seconds, as browsers read max-age. */
export function hstsValue(ms: number): string {
  return `max-age=${Math.floor(ms / 1000)}`
}
