// A self-signed certificate for HTTPS on this machine (`npm start -- --https`): made once with the openssl CLI, then kept and reused.
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, errorCode } from '../errors.js'
import { loadCertificate, type Certificate } from './certificates.js'

/** What a browser or curl on this machine calls it. */
export const LOCAL_NAMES = ['localhost', '127.0.0.1', '::1'] as const

/**
 * How long a new certificate is valid: 825 days, the longest Apple platforms accept for a
 * certificate issued by a root the user trusts by hand (browsers refuse longer ones).
 */
export const LOCAL_DAYS = 825

/** A certificate is made anew when it would expire within this long, or names other hosts. */
const RENEW_BEFORE_MS = 30 * 86_400_000

/** Options of `localCertificate`. */
export interface LocalCertificateOptions {
  /** The openssl command. Default `openssl`, from PATH. */
  openssl?: string
  /** Now, ms since the epoch, for tests of renewal. Default `Date.now()`. */
  now?: number
}

/** A local certificate, and whether it was made just now. */
export interface LocalCertificate {
  cert: string
  key: string
  certificate: Certificate
  created: boolean
}

/** Whether a kept certificate can serve on: readable, for these names, and not near its end. */
function reusable(cert: string, key: string, now: number): Certificate | undefined {
  let c: Certificate
  try {
    c = loadCertificate({ cert, key }, 'TLSv1.2')
  } catch {
    return undefined
  }
  const covers = c.names.includes('localhost') && c.addresses.includes('127.0.0.1') && c.addresses.includes('0:0:0:0:0:0:0:1')
  return covers && c.validTo.getTime() - now > RENEW_BEFORE_MS ? c : undefined
}

/**
 * The certificate in `dir` (`localhost.crt`, `localhost.key`), made with openssl when there is
 * none yet, or it no longer serves (unreadable, near its end): an EC P-256 key and a
 * certificate for localhost, 127.0.0.1 and ::1 signed by itself, what `mkcert`-style tools make
 * without the CA. The key is readable by its owner only. A person trusts the certificate itself
 * (curl `--cacert`, the system store): it is the only one such a trust lets in.
 * @throws ConfigError with one line when openssl is missing or fails.
 */
export function localCertificate(dir: string, options: LocalCertificateOptions = {}): LocalCertificate {
  const cert = join(dir, 'localhost.crt')
  const key = join(dir, 'localhost.key')
  const kept = reusable(cert, key, options.now ?? Date.now())
  if (kept !== undefined) return { cert, key, certificate: kept, created: false }
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  } catch (err) {
    throw new ConfigError(`https: cannot make ${dir} for the local certificate (${errorCode(err as Error)})`)
  }
  const openssl = options.openssl ?? 'openssl'
  const san = LOCAL_NAMES.map(n => (n === 'localhost' ? `DNS:${n}` : `IP:${n}`)).join(',')
  // prettier-ignore
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-subj', '/CN=localhost', '-days', String(LOCAL_DAYS), '-addext', `subjectAltName=${san}`,
    // A server certificate, not a CA: what the names are trusted for and nothing else.
    '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature', '-addext', 'extendedKeyUsage=serverAuth']
  const run = spawnSync(openssl, args, { encoding: 'utf8', timeout: 30_000 })
  if (run.error !== undefined) {
    const why = (run.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : run.error.message
    throw new ConfigError(
      `https: ${openssl} ${why}; it makes the local certificate (apt-get install openssl), or give --tls-cert and --tls-key`,
    )
  }
  if (run.status !== 0) {
    const last = run.stderr.trim().split('\n').pop() || 'no message'
    throw new ConfigError(`https: ${openssl} could not make the local certificate in ${dir} (status ${run.status}: ${last})`)
  }
  chmodSync(key, 0o600)
  return { cert, key, certificate: loadCertificate({ cert, key }, 'TLSv1.2'), created: true }
}

/** How to trust the local certificate, for the launcher to print: its fingerprint, curl and Node, then the system store. */
export function trustAdvice(c: LocalCertificate, url: string): string[] {
  return [
    `${c.created ? 'made' : 'using'} ${c.cert}, SHA-256 ${c.certificate.fingerprint}, valid until ${c.certificate.validTo.toISOString().slice(0, 10)}`,
    `trust it: curl --cacert ${c.cert} ${url} (or curl -k); Node: NODE_EXTRA_CA_CERTS=${c.cert}`,
    `every program on Debian/Ubuntu: sudo cp ${c.cert} /usr/local/share/ca-certificates/switchyard-localhost.crt && sudo update-ca-certificates`,
  ]
}
