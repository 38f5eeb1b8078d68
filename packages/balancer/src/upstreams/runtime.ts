// What the pool should hold: the configured upstreams, as the admin API changed them, with each `resolve` line's addresses.
import { upstreamId } from './upstream.js'
import type { UpstreamSpec } from '../options.js'
import type { DnsName, Found } from './dns-lookup.js'
import { nameOf } from './dns-lookup.js'
import type { RuntimeState } from './state-file.js'

/** What a cluster's primary sends its workers so that each holds the same upstreams: the runtime state and what DNS found. */
export interface RuntimeSnapshot extends RuntimeState {
  /** Each `resolve` line's addresses, by its label. */
  found: Record<string, Found[]>
}

/** The DNS name an upstream line with `resolve` asks for; undefined for a line used as it is. */
export function dnsNameOf(spec: UpstreamSpec): DnsName | undefined {
  if (spec.resolve !== true) return undefined
  return { host: spec.host, port: spec.service === undefined ? spec.port : undefined, service: spec.service, backup: spec.backup ?? false }
}

/**
 * The upstream specs the pool should hold, in order: the configured ones less those the admin API
 * removed, then those it added; a `resolve` line stands for the addresses its name has now, each
 * with the line's settings (and the SRV record's weight and tier). An address listed twice is
 * kept once, where it first appears.
 */
export function desiredSpecs(
  configured: readonly UpstreamSpec[],
  added: readonly UpstreamSpec[],
  removed: readonly string[],
  found: ReadonlyMap<string, readonly Found[]>,
): UpstreamSpec[] {
  const gone = new Set(removed)
  const out: UpstreamSpec[] = []
  const seen = new Set<string>()
  for (const spec of [...configured.filter(s => !gone.has(upstreamId(s))), ...added]) {
    const name = dnsNameOf(spec)
    const specs =
      name === undefined
        ? [spec]
        : (found.get(nameOf(name)) ?? []).map(f => ({
            ...spec,
            host: f.address,
            port: f.port,
            weight: f.weight ?? spec.weight,
            backup: f.backup,
            resolve: undefined,
            service: undefined,
            from: nameOf(name),
            // TLS to a found address still checks the certificate against the name looked up,
            // as nginx's proxy_ssl_name defaults to the proxy_pass host, not the address.
            tls: spec.tls && { ...spec.tls, servername: spec.tls.servername ?? spec.host },
          }))
    for (const s of specs) {
      const id = upstreamId(s)
      if (seen.has(id)) continue
      seen.add(id)
      out.push(s)
    }
  }
  return out
}
