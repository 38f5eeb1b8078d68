// One DNS lookup of an upstream name: A / AAAA, or SRV into primaries, backups and weights; empty vs failed.
/**
 * One DNS lookup of an upstream name, as nginx's `server NAME resolve` and `service=NAME` do it:
 * A and AAAA records, or SRV records whose targets are then looked up, into addresses with ports,
 * weights and tiers. The loop that repeats it at the TTL, with HAProxy's hold rules, is discovery.ts.
 */
import { Resolver } from 'node:dns/promises'
import { isIP } from 'node:net'
import { ConfigError } from '../errors.js'

/** The part of `dns.promises.Resolver` a lookup uses. */
export interface DnsResolver {
  resolve4(name: string, options: { ttl: true }): Promise<{ address: string; ttl: number }[]>
  resolve6(name: string, options: { ttl: true }): Promise<{ address: string; ttl: number }[]>
  resolveSrv(name: string): Promise<{ name: string; port: number; priority: number; weight: number }[]>
  cancel(): void
}

/** What an upstream line with `resolve` asks to look up. */
export interface DnsName {
  /** The host name of the line. */
  host: string
  /** The line's port; undefined with `service=`, whose ports come from the SRV records. */
  port: number | undefined
  /** nginx `service=NAME`: look up SRV records instead of A / AAAA. */
  service: string | undefined
  /**
   * The line's `backup`: its addresses are backups. With `service=`, as in nginx, the records of
   * the lowest priority number become backups and the others are ignored.
   */
  backup: boolean
}

/** One address a name resolved to, as an upstream. */
export interface Found {
  /** The IP address (IPv6 without brackets). */
  address: string
  port: number
  /** From the SRV record (0 taken as 1, the least an upstream can have); undefined: the line's own. */
  weight: number | undefined
  backup: boolean
}

/**
 * - `answer`: addresses, with the smallest TTL among their records, in seconds;
 * - `empty`: the name does not exist (NXDOMAIN) or has no records of the type: `why` says which;
 * - `failed`: no answer to trust (a timeout, SERVFAIL, a refused query): `why` is the code.
 */
export type Lookup =
  { kind: 'answer'; found: Found[]; ttl: number | undefined } | { kind: 'empty'; why: string } | { kind: 'failed'; why: string }

/** Error codes of `dns.promises` that are an answer saying "nothing here", not a failure. */
const NOTHING: Record<string, string> = { ENOTFOUND: 'NXDOMAIN', ENODATA: 'no records' }

/** The resolver: the system's servers, or `servers` (`--resolver`); HAProxy's `timeout resolve 1s` and 3 tries. */
export function createResolver(servers: readonly string[] = [], timeout = 1000, tries = 3): DnsResolver {
  const resolver = new Resolver({ timeout, tries })
  if (servers.length > 0) resolver.setServers(servers)
  return resolver
}

/**
 * Parses `--resolver IP[:port]`: `10.0.0.2`, `10.0.0.2:5353`, `[fd00::2]:53` or `fd00::2`; the
 * form `setServers` takes.
 * @throws ConfigError naming the value.
 */
export function parseResolver(value: unknown): string {
  const text = typeof value === 'string' ? value.trim() : ''
  // `[v6]:port`, `v4:port`, or a bare address (IPv6 ones have colons of their own).
  const m = /^\[([^\]]+)\](?::(\d+))?$|^([^:]+)(?::(\d+))?$/.exec(text)
  const ip = m === null ? text : ((m[1] ?? m[3]) as string)
  const port = m?.[2] ?? m?.[4]
  const family = isIP(ip)
  const ok = (m?.[1] === undefined ? family !== 0 : family === 6) && (port === undefined || (Number(port) >= 1 && Number(port) <= 65535))
  if (!ok) {
    throw new ConfigError(
      `resolver: ${JSON.stringify(value)} is not an IP address with an optional port, like 10.0.0.2, 10.0.0.2:5353 or [fd00::2]:53`,
    )
  }
  return text
}

/** The SRV name nginx looks up for `service=NAME` on `host`: `_NAME._tcp.host`, or `NAME.host` when NAME has a dot. */
export function srvName(service: string, host: string): string {
  return service.includes('.') ? `${service}.${host}` : `_${service}._tcp.${host}`
}

/** What went wrong in a lookup, as `empty` or `failed`. */
class Nothing {
  constructor(
    readonly kind: 'empty' | 'failed',
    readonly why: string,
  ) {}
}

function classify(err: unknown, name: string, type: string): Nothing {
  const code = String((err as NodeJS.ErrnoException).code)
  const nothing = NOTHING[code]
  return nothing === undefined ? new Nothing('failed', `${type} ${name}: ${code}`) : new Nothing('empty', `${type} ${name}: ${nothing}`)
}

/**
 * A name's addresses, A and AAAA together, as nginx resolves both by default. Either query
 * failing fails the whole: the caller keeps its last answer rather than half of one.
 */
async function addresses(resolver: DnsResolver, name: string): Promise<{ address: string; ttl: number | undefined }[]> {
  if (isIP(name) !== 0) return [{ address: name, ttl: undefined }]
  const results = await Promise.allSettled([resolver.resolve4(name, { ttl: true }), resolver.resolve6(name, { ttl: true })])
  const nothing = results.flatMap((r, i) => (r.status === 'rejected' ? [classify(r.reason, name, i === 0 ? 'A' : 'AAAA')] : []))
  const failed = nothing.find(n => n.kind === 'failed')
  if (failed !== undefined) throw failed
  const found = results.flatMap(r => (r.status === 'fulfilled' ? r.value : []))
  if (found.length === 0) throw new Nothing('empty', nothing.map(n => n.why).join(', '))
  return found
}

const minTtl = (ttls: readonly (number | undefined)[]): number | undefined => {
  const known = ttls.filter((ttl): ttl is number => ttl !== undefined)
  return known.length === 0 ? undefined : Math.min(...known)
}

/**
 * Looks `name` up once. With `service=`, the SRV records give ports and weights; the lowest
 * priority number are the primaries, the rest backups (nginx: "highest-priority SRV records are
 * resolved as primary servers, the rest as backup servers"). A target of "." (which Node gives as
 * "") means the service is not offered (RFC 2782). An address two records lead to is kept once, from the first.
 * Node's `resolveSrv` gives no TTL: the TTL is then that of the targets' addresses.
 */
export async function lookup(resolver: DnsResolver, name: DnsName): Promise<Lookup> {
  try {
    if (name.service === undefined) {
      const found = await addresses(resolver, name.host)
      const port = name.port as number
      return {
        kind: 'answer',
        found: found.map(a => ({ address: a.address, port, weight: undefined, backup: name.backup })),
        ttl: minTtl(found.map(a => a.ttl)),
      }
    }
    const srv = srvName(name.service, name.host)
    const records = await resolver.resolveSrv(srv).catch((err: unknown) => {
      throw classify(err, srv, 'SRV')
    })
    const offered = records.filter(r => r.name !== '').sort((a, b) => a.priority - b.priority)
    if (offered.length === 0) return { kind: 'empty', why: `SRV ${srv}: no service offered (target ".")` }
    const first = (offered[0] as { priority: number }).priority
    const used = name.backup ? offered.filter(r => r.priority === first) : offered
    const lists = await Promise.all(
      used.map(r => addresses(resolver, r.name).catch((err: Nothing) => (err.kind === 'empty' ? [] : Promise.reject(err)))),
    )
    const found: Found[] = []
    const seen = new Set<string>()
    const ttls: (number | undefined)[] = []
    used.forEach((r, i) => {
      for (const a of lists[i] as { address: string; ttl: number | undefined }[]) {
        const key = `${a.address} ${r.port}`
        if (seen.has(key)) continue
        seen.add(key)
        ttls.push(a.ttl)
        found.push({ address: a.address, port: r.port, weight: Math.max(1, r.weight), backup: name.backup || r.priority !== first })
      }
    })
    if (found.length === 0) return { kind: 'empty', why: `SRV ${srv}: no target has an address` }
    return { kind: 'answer', found, ttl: minTtl(ttls) }
  } catch (err) {
    // Every rejection above is a Nothing: the resolver's errors are classified where they arise.
    const nothing = err as Nothing
    return { kind: nothing.kind, why: nothing.why }
  }
}

/** The name as logged: `app.internal:5000`, or `app.internal service=http`. */
export function nameOf(name: DnsName): string {
  return name.service === undefined ? `${name.host}:${name.port}` : `${name.host} service=${name.service}`
}
