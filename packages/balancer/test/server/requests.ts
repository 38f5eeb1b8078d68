// The checks a request passes before any upstream sees it, on requests Node's parser accepted from a raw socket.
import { createServer } from 'node:http'
import t from 'tap'
import { answerDue, closeAfterResponse, closing, countHeader, hasBody, refusal } from '../../src/server/requests.js'
import { rawExchange, serve } from '../fixtures/servers.js'

/** What refusal() made of a request, as the test server reports it. */
interface Verdict {
  refused: { status: number; message: string } | null
  url: string
  host: string | null
  hasBody: boolean
  hosts: number
}

t.test('refusal(): what may be forwarded, what is fixed, and what is answered', async t => {
  const port = await serve(
    t,
    // Node's own Host check is off, as in the balancer's listener: refusal() makes it.
    createServer({ requireHostHeader: false }, (req, res) => {
      const verdict: Verdict = {
        hosts: countHeader(req, 'host'),
        refused: refusal(req) ?? null,
        url: req.url as string,
        host: req.headers.host ?? null,
        hasBody: hasBody(req),
      }
      res.setHeader('connection', 'close')
      res.end(JSON.stringify(verdict))
      req.resume()
    }),
  )
  const ask = async (head: string): Promise<Verdict> => {
    const reply = await rawExchange(port, `${head}\r\n\r\n`)
    return JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as Verdict
  }
  const table: [string, string, Partial<Verdict>][] = [
    ['an origin-form GET', 'GET /a?b HTTP/1.1\r\nHost: x', { refused: null, url: '/a?b', host: 'x', hasBody: false }],
    ['OPTIONS *', 'OPTIONS * HTTP/1.1\r\nHost: x', { refused: null, url: '*' }],
    ['HTTP/1.0 without Host', 'GET / HTTP/1.0', { refused: null, host: null, hosts: 0 }],
    [
      'absolute-form: Host from the target, default port dropped',
      'GET http://Example.com:80/p?q HTTP/1.1\r\nHost: other',
      { refused: null, url: '/p?q', host: 'Example.com' },
    ],
    [
      'absolute-form https with a query only',
      'GET https://e.example:443?x=1 HTTP/1.1\r\nHost: e.example',
      { refused: null, url: '/?x=1', host: 'e.example' },
    ],
    [
      'absolute-form keeps another port',
      'GET http://e.example:8080/ HTTP/1.1\r\nHost: e.example',
      { refused: null, url: '/', host: 'e.example:8080' },
    ],
    ['a body by Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0', { refused: null, hasBody: false }],
    ['a chunked body', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0', { refused: null, hasBody: true }],
  ]
  for (const [name, head, want] of table) t.match(await ask(head), want, name)
  const refusals: [string, string, number, RegExp][] = [
    ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: x', 505, /^505 HTTP Version Not Supported: HTTP\/2\.0; use HTTP\/1\.1$/],
    ['HTTP/0.9', 'GET / HTTP/0.9\r\nHost: x', 400, /^400 Bad Request: HTTP\/0\.9 requests are not served$/],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b', 400, /more than one Host header$/],
    ['HTTP/1.1 without Host', 'GET / HTTP/1.1', 400, /needs a Host header/],
    ['an empty Host', 'GET / HTTP/1.1\r\nHost: ', 400, /a Host needs a name$/],
    [
      'Transfer-Encoding on HTTP/1.0',
      'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0',
      400,
      /Transfer-Encoding in an HTTP\/1\.0 request$/,
    ],
    [
      'two Transfer-Encoding lines',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0',
      400,
      /more than one Transfer-Encoding header$/,
    ],
    [
      'a coding but chunked',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0',
      501,
      /^501 Not Implemented: transfer coding "gzip, chunked" is not supported, only chunked$/,
    ],
    ['* on a GET', 'GET * HTTP/1.1\r\nHost: x', 400, /the request target is not a path, nor an http:\/\/ URL$/],
    ['absolute-form with user info', 'GET http://u@e.example/ HTTP/1.1\r\nHost: e.example', 400, /not a path, nor an http:\/\/ URL$/],
  ]
  for (const [name, head, status, message] of refusals) {
    const { refused } = await ask(head)
    t.equal(refused?.status, status, `${name}: ${status}`)
    t.match(refused?.message, message, `${name}: says why`)
  }
})

t.test('the marks on a connection: a response that ends it, and a response still due on it', async t => {
  const seen: [string, boolean, boolean][] = []
  const port = await serve(
    t,
    createServer((req, res) => {
      seen.push([req.url as string, closing(req.socket), answerDue(req.socket)])
      if (req.url === '/last') closeAfterResponse(req.socket)
      seen.push([`${req.url} after`, closing(req.socket), answerDue(req.socket)])
      res.end()
    }),
  )
  await rawExchange(port, 'GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.same(
    seen,
    [
      ['/first', false, true],
      ['/first after', false, true],
      ['/last', false, true],
      ['/last after', true, true],
    ],
    'a response is due while its handler runs; the mark stays on the connection once set',
  )
})
