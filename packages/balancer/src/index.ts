export { Balancer, createBalancer, type BalancerOptions } from './balancer.js'
export { CONFIG_KEYS, parseUpstream, readConfigFile, resolveConfig, type ResolvedConfig } from './config.js'
export { parseDuration } from './duration.js'
export {
  ConfigError,
  NoUpstreamError,
  UpstreamFailedError,
  UpstreamTimeoutError,
  errorCode,
  statusForUpstreamError,
} from './errors.js'
export { RoundRobin, type Policy, type PolicyName } from './policies.js'
export { Pool, Upstream, type HealthChange, type UpstreamSpec } from './upstream.js'
