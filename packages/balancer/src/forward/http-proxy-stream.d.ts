// http-proxy's web passes, which @types/http-proxy does not describe. Switchyard calls the one
// that builds and sends the upstream request (`stream`) directly: see Exchange.next().
declare module 'http-proxy/lib/http-proxy/passes/web-incoming.js' {
  import type { Agent, IncomingMessage, ServerResponse } from 'node:http'
  import type httpProxy from 'http-proxy'

  /** The options `stream` and http-proxy's `setupOutgoing` read. */
  export interface StreamOptions {
    target: { protocol: string; host: string; hostname: string; port: number }
    agent: Agent
    /** What http-proxy pipes into the upstream request instead of the client request. */
    buffer: { pipe(destination: NodeJS.WritableStream): unknown }
    selfHandleResponse: boolean
    ignorePath: boolean
    prependPath: boolean
    /** Take `req.url` as it is rather than `url.parse()` it (it is then dropped anyway: `ignorePath`). */
    toProxy: boolean
    /** The object `setupOutgoing` fills in and hands to `http.request` (a new `{}` without it). */
    ssl?: object
  }

  const passes: {
    stream(
      req: IncomingMessage,
      res: ServerResponse,
      options: StreamOptions,
      head: undefined,
      server: httpProxy,
      callback: (err: Error) => void,
    ): void
  }
  export default passes
}
