import t from 'tap'
import { hstsValue, httpsRedirect } from '../../src/server/https-redirect.js'

t.test('the same URL on HTTPS, the port replaced, 443 left out', async t => {
  const cases: [string, string | undefined, string | undefined, number, string, string][] = [
    ['/a/b?c=1', 'example.test', '127.0.0.1', 8443, 'https://example.test:8443/a/b?c=1', 'a name without a port gets the HTTPS one'],
    ['/', 'example.test:8080', '127.0.0.1', 443, 'https://example.test/', 'the plain port is replaced, 443 left out'],
    ['/x', 'EXAMPLE.test:80', '127.0.0.1', 8443, 'https://EXAMPLE.test:8443/x', 'the name as sent'],
    ['/v6', '[::1]:8080', '::1', 8443, 'https://[::1]:8443/v6', 'an IPv6 literal keeps its brackets'],
    ['/old', undefined, '127.0.0.1', 8443, 'https://127.0.0.1:8443/old', 'no Host (HTTP/1.0): the address it reached'],
    ['/old6', undefined, '::1', 443, 'https://[::1]/old6', 'an IPv6 address in brackets'],
    ['*', 'example.test', '127.0.0.1', 443, 'https://example.test/', 'OPTIONS *: the root'],
    ['//double//slash', 'example.test', '127.0.0.1', 443, 'https://example.test//double//slash', 'the path byte for byte'],
  ]
  for (const [url, host, local, port, want, what] of cases) t.same(httpsRedirect(url, host, local, port), { location: want }, what)
})

t.test('ACME challenges are forwarded; a Host that is not a host is refused', async t => {
  t.same(
    httpsRedirect('/.well-known/acme-challenge/token', 'example.test', '127.0.0.1', 443),
    { forward: true },
    'HTTP-01 challenges stay on HTTP',
  )
  t.same(
    httpsRedirect('/.well-known/other', 'example.test', '127.0.0.1', 443),
    { location: 'https://example.test/.well-known/other' },
    'other well-known paths move',
  )
  for (const host of ['evil.test@example.test', 'example.test/path', 'a b', '']) {
    t.same(
      httpsRedirect('/', host, '127.0.0.1', 443),
      { refuse: '400 Bad Request: the Host header is not a host to redirect to' },
      JSON.stringify(host),
    )
  }
  t.same(
    httpsRedirect('/', undefined, undefined, 443),
    { refuse: '400 Bad Request: the Host header is not a host to redirect to' },
    'neither Host nor address',
  )
})

t.test('hstsValue is whole seconds', async t => {
  t.equal(hstsValue(365 * 86_400_000), 'max-age=31536000', 'a year')
  t.equal(hstsValue(1500), 'max-age=1', 'rounded down')
})
