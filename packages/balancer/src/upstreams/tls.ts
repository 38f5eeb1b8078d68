// TLS to an upstream (nginx `proxy_pass https://` with `proxy_ssl_verify on`): the CA it is checked against, the agents that carry it, what its failures mean.
import { readFileSync } from 'node:fs'
import { Agent } from 'node:https'
import { TlsKeepAliveAgent } from './keep-alive.js'
import { isIP } from 'node:net'
import { ConfigError, errorCode } from '../errors.js'

/** How to speak TLS to one upstream: its server line's `tls` and `tls_servername=NAME`. */
export interface UpstreamTls {
  /**
   * The name sent as SNI and checked against the certificate (nginx `proxy_ssl_name` with
   * `proxy_ssl_server_name on`). Default: the upstream's host, with no SNI when that is an
   * address (RFC 6066 allows none), checked against the certificate's IP addresses.
   */
  servername?: string | undefined
}

/**
 * Reads `--upstream-ca`: the PEM certificates upstream certificates must chain to, in place of
 * Node's default roots (nginx `proxy_ssl_trusted_certificate`).
 * @throws ConfigError naming the file when it cannot be read or holds no certificate.
 */
export function readUpstreamCa(file: string): Buffer {
  let pem: Buffer
  try {
    pem = readFileSync(file)
  } catch (err) {
    throw new ConfigError(`upstream-ca ${file}: cannot be read (${errorCode(err as Error)})`)
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new ConfigError(`upstream-ca ${file}: holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)`)
  return pem
}

/** The agents for one TLS upstream: kept-alive connections, and a fresh one for the keep-alive race's resend. */
export interface TlsAgents {
  agent: Agent
  fresh: Agent
  /** The same trust and name for a connection opened by hand (a WebSocket tunnel's `tls.connect`). */
  options: { ca: Buffer | undefined; servername: string; rejectUnauthorized: true; ALPNProtocols: string[] }
}

/**
 * Agents that open verified TLS connections to `host`. An agent's own options win over each
 * request's (Node merges them last), so the name checked is the upstream's (or `servername`),
 * never the client's `Host`, which Node would otherwise send as SNI and check the certificate
 * against. `ca` undefined: Node's default roots (Mozilla's, plus NODE_EXTRA_CA_CERTS; the
 * system's with `node --use-openssl-ca`). `idle`: ms an idle connection is kept, as for plain
 * upstreams.
 */
export function tlsAgents(host: string, tls: UpstreamTls, ca: Buffer | undefined, idle: number): TlsAgents {
  // '' sends no SNI and checks the certificate against `host` (Node's tls.connect).
  const servername = tls.servername ?? (isIP(host) === 0 ? host : '')
  const common = { ca, servername, rejectUnauthorized: true as const }
  return {
    agent: new TlsKeepAliveAgent(idle, common),
    fresh: new Agent(common),
    // A WebSocket handshake is HTTP/1.1: an upstream that offers h2 must not pick it.
    options: { ...common, ALPNProtocols: ['http/1.1'] },
  }
}

/** What the codes of a failed TLS connection to an upstream mean, for the log and the dashboard. */
const MEANING: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT: 'its certificate is not signed by a trusted CA',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chain ends in a CA that is not trusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed and not trusted',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate names another host',
}

/**
 * One line for a TLS failure reaching an upstream, naming the trust to fix, or undefined for an
 * error that is not about TLS (a refused connection, say). Node's own message for a name
 * mismatch says which names the certificate has, and is kept.
 */
export function describeTlsFailure(err: Error): string | undefined {
  const code = errorCode(err)
  if (code === 'EPROTO') {
    // OpenSSL's reason, from `…:SSL routines:ssl3_get_record:wrong version number:…`.
    const reason = /SSL routines:[^:]*:([^:]+)/.exec(err.message)?.[1] ?? err.message
    const hint = reason === 'wrong version number' ? '; it does not speak TLS on that port' : ''
    return `TLS: the handshake failed (EPROTO: ${reason}${hint})`
  }
  const meaning = MEANING[code]
  if (meaning === undefined) return undefined
  const detail = code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? `: ${(err as Error & { reason?: string }).reason}` : ''
  const hint = /trusted/.test(meaning) ? '; --upstream-ca names the CA that signed it' : ''
  return `TLS: ${meaning}${detail} (${code}${hint})`
}
