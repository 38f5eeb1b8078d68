// The certificates a TLS listener serves: chosen per handshake by SNI, and read again on SIGHUP without a dropped connection.
import type { SecureContext } from 'node:tls'
import { ConfigError } from '../errors.js'
import { loadCertificate, validityWarning, type Certificate, type CertificateFiles, type TlsVersion } from './certificates.js'

/** What `reload()` did, in one line for the log. */
export interface CertificateReload {
  /** Whether every pair was read; a pair that was not keeps the certificate it had. */
  ok: boolean
  line: string
}

/** `*.example.com` for `a.example.com`: the one wildcard a name can match (RFC 6125 §6.4.3, one label, leftmost). */
function wildcardOf(name: string): string | undefined {
  const dot = name.indexOf('.')
  return dot <= 0 ? undefined : `*${name.slice(dot)}`
}

/**
 * The certificates of one listener, in the order given. A handshake's SNI name picks one (see
 * `select`); a client that sends none, or a name no certificate has, gets the first, as nginx's
 * default server answers it. Handshakes read the set in force when they start: `reload()` swaps
 * in a new one whole, so a connection already open keeps the certificate it was opened with.
 */
export class CertificateStore {
  readonly #files: readonly CertificateFiles[]
  readonly #minVersion: TlsVersion
  #certificates: Certificate[]
  /** Exact names and wildcards (`*.example.com`) to the first certificate that has them. */
  #byName = new Map<string, Certificate>()

  /**
   * Reads every pair now. @throws ConfigError naming the first file that cannot be served (the
   * CLI prints it and exits 1); see `warnings` for what loads but will be refused by clients.
   */
  constructor(files: readonly CertificateFiles[], minVersion: TlsVersion) {
    if (files.length === 0) throw new ConfigError('tls-cert: at least one --tls-cert FILE --tls-key FILE pair is needed')
    this.#files = files
    this.#minVersion = minVersion
    this.#certificates = files.map(f => loadCertificate(f, minVersion))
    this.#index()
  }

  /** The certificates in force, in the order given. */
  get certificates(): readonly Certificate[] {
    return this.#certificates
  }

  /** The certificate for clients without SNI, or with a name no certificate has. */
  get default(): Certificate {
    return this.#certificates[0] as Certificate
  }

  /** One line per certificate clients will refuse (expired, not yet valid). */
  warnings(now = Date.now()): string[] {
    return this.#certificates.flatMap(c => validityWarning(c, now) ?? [])
  }

  #index(): void {
    const byName = new Map<string, Certificate>()
    for (const c of this.#certificates) for (const name of c.names) if (!byName.has(name)) byName.set(name, c)
    this.#byName = byName
  }

  /**
   * The certificate for an SNI name: one that has the name exactly, else one whose wildcard
   * covers it, else the default. Exact before wildcard, and the first given on a tie, as
   * nginx's server_name ranks exact names over wildcards.
   */
  select(servername: string): Certificate {
    // A trailing dot names the same host (`example.com.`); SNI is case-insensitive (RFC 6066 §3).
    const name = servername.toLowerCase().replace(/\.$/, '')
    const wildcard = wildcardOf(name)
    return this.#byName.get(name) ?? (wildcard === undefined ? undefined : this.#byName.get(wildcard)) ?? this.default
  }

  /** For `tls.createServer({ SNICallback })`: never fails, since every name has a certificate. */
  readonly SNICallback = (servername: string, done: (err: Error | null, ctx?: SecureContext) => void): void => {
    done(null, this.select(servername).context)
  }

  /**
   * Reads every pair's files again (certificate renewal). A pair that reads and checks is
   * swapped in for new handshakes; one that does not keeps the certificate it had, and the line
   * says why. Open connections are not touched.
   */
  reload(now = Date.now()): CertificateReload {
    const parts: string[] = []
    let ok = true
    this.#certificates = this.#certificates.map((old, i) => {
      const files = this.#files[i] as CertificateFiles
      try {
        const c = loadCertificate(files, this.#minVersion)
        const what = c.fingerprint === old.fingerprint ? 'unchanged' : `now ${c.fingerprint.slice(0, 23)}…`
        const warning = validityWarning(c, now)
        parts.push(`${files.cert} ${what}, expires ${c.validTo.toISOString().slice(0, 10)}${warning === undefined ? '' : ` (${warning})`}`)
        return c
      } catch (err) {
        ok = false
        parts.push(`${files.cert} kept the certificate it had: ${(err as Error).message}`)
        return old
      }
    })
    this.#index()
    return { ok, line: `certificates ${ok ? 'reloaded' : 'reloaded in part'}: ${parts.join('; ')}` }
  }
}
