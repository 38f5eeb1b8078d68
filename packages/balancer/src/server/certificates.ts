// A certificate and its key, read from PEM files and checked the way nginx checks them at start (ssl_certificate / ssl_certificate_key).
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createSecureContext, type SecureContext } from 'node:tls'
import { ConfigError, errorCode } from '../errors.js'

/** The TLS versions a listener may require at least (nginx `ssl_protocols`, from the lowest named). */
export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const
export type TlsVersion = (typeof TLS_VERSIONS)[number]

/** Where a certificate chain and its key are, as given by `--tls-cert FILE --tls-key FILE`. */
export interface CertificateFiles {
  /** A PEM chain: the certificate first, then the intermediates (nginx's `ssl_certificate`). */
  cert: string
  /** Its private key, PEM, not encrypted. */
  key: string
}

/** A certificate chain and key that were read, checked and made into a context for handshakes. */
export interface Certificate {
  readonly files: CertificateFiles
  /**
   * The DNS names the certificate serves, lower case, as SNI is matched against them:
   * `*.example.com` for a wildcard. From its subjectAltName, or its CN when it has no DNS name
   * there (as Node's checkServerIdentity reads a certificate).
   */
  readonly names: readonly string[]
  /** The IP addresses in its subjectAltName: shown, never matched (SNI carries no address, RFC 6066 §3). */
  readonly addresses: readonly string[]
  /** SHA-256 of the certificate, `AB:CD:…`, as browsers show it. */
  readonly fingerprint: string
  readonly validFrom: Date
  readonly validTo: Date
  /** What new handshakes for these names use. */
  readonly context: SecureContext
  /** The PEM as read, for `setSecureContext` on the default certificate. */
  readonly pem: { cert: Buffer; key: Buffer }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g
const PEM_KEY = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----/

function read(flag: string, file: string): Buffer {
  try {
    return readFileSync(file)
  } catch (err) {
    throw new ConfigError(`${flag} ${file}: cannot be read (${errorCode(err as Error)})`)
  }
}

/** The certificates in a PEM chain, leaf first; refuses a file with none or one that does not parse. */
function parseChain(file: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('latin1').match(PEM_CERT)
  if (blocks === null) throw new ConfigError(`tls-cert ${file}: not a PEM certificate (no -----BEGIN CERTIFICATE----- block)`)
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block)
    } catch (err) {
      throw new ConfigError(`tls-cert ${file}: certificate ${i + 1} of the chain does not parse (${errorCode(err as Error)})`)
    }
  })
}

function parseKey(file: string, pem: Buffer): KeyObject {
  const text = pem.toString('latin1')
  const m = PEM_KEY.exec(text)
  if (m === null) throw new ConfigError(`tls-key ${file}: not a PEM private key (no -----BEGIN PRIVATE KEY----- block)`)
  // nginx asks for ssl_password_file here; a balancer that restarts unattended cannot ask.
  if (m[1] === 'ENCRYPTED ' || text.includes('Proc-Type: 4,ENCRYPTED')) {
    throw new ConfigError(`tls-key ${file}: the key is encrypted; give it unencrypted (e.g. openssl pkey -in ${file} -out plain.key)`)
  }
  try {
    return createPrivateKey(pem)
  } catch (err) {
    throw new ConfigError(`tls-key ${file}: the private key does not parse (${errorCode(err as Error)})`)
  }
}

/**
 * The names in a subjectAltName as Node prints it: `DNS:a.example, IP Address:127.0.0.1`. Node
 * quotes a value holding a comma or a quote as a JSON string, so that one entry cannot pass for two.
 */
export function altNames(san: string | undefined): { dns: string[]; ip: string[] } {
  const out = { dns: [] as string[], ip: [] as string[] }
  const entry = /(DNS|IP Address|[A-Za-z ]+?):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/y
  let m: RegExpExecArray | null
  while (san !== undefined && entry.lastIndex < san.length && (m = entry.exec(san)) !== null) {
    const value = (m[2] as string).startsWith('"') ? (JSON.parse(m[2] as string) as string) : (m[2] as string)
    if (m[1] === 'DNS') out.dns.push(value.toLowerCase())
    else if (m[1] === 'IP Address') out.ip.push(value)
  }
  return out
}

/** The common name in a subject such as `C=FR\nCN=example.com`, lower case. */
function commonName(subject: string): string | undefined {
  return /(?:^|\n)CN=([^\n]*)/.exec(subject)?.[1]?.toLowerCase()
}

/** A one-line note to log about a certificate that loads but that clients will refuse; undefined when none. */
export function validityWarning(c: Certificate, now = Date.now()): string | undefined {
  const day = (d: Date): string => d.toISOString().slice(0, 10)
  if (c.validTo.getTime() <= now)
    return `tls-cert ${c.files.cert}: expired on ${day(c.validTo)}; served anyway, but clients will refuse it until it is renewed`
  if (c.validFrom.getTime() > now)
    return `tls-cert ${c.files.cert}: not valid before ${day(c.validFrom)}; clients will refuse it until then`
  return undefined
}

/**
 * Reads and checks a certificate chain and its key: each file must be readable PEM, and the key
 * must be the certificate's. Each problem is a ConfigError of one line that names the file.
 * An expired certificate is not refused (see validityWarning): nginx serves one too, and a
 * balancer that would not start over it takes the site down for longer than the renewal.
 */
export function loadCertificate(files: CertificateFiles, minVersion: TlsVersion): Certificate {
  const certPem = read('tls-cert', files.cert)
  const keyPem = read('tls-key', files.key)
  const chain = parseChain(files.cert, certPem)
  const key = parseKey(files.key, keyPem)
  const leaf = chain[0] as X509Certificate
  if (!leaf.checkPrivateKey(key)) throw new ConfigError(`tls-key ${files.key}: does not match the certificate in ${files.cert}`)
  let context: SecureContext
  try {
    context = createSecureContext({ cert: certPem, key: keyPem, minVersion })
  } catch (err) {
    // What OpenSSL still refuses once both parse (a key too weak for its security level, say).
    throw new ConfigError(`tls-cert ${files.cert}: OpenSSL refuses the pair (${errorCode(err as Error)}: ${(err as Error).message})`)
  }
  const san = altNames(leaf.subjectAltName)
  const cn = commonName(leaf.subject)
  return {
    files,
    names: san.dns.length > 0 ? san.dns : cn === undefined ? [] : [cn],
    addresses: san.ip,
    fingerprint: leaf.fingerprint256,
    validFrom: new Date(leaf.validFrom),
    validTo: new Date(leaf.validTo),
    context,
    pem: { cert: certPem, key: keyPem },
  }
}
