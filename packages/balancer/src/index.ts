export { Balancer, createBalancer, type BalancerOptions } from './balancer.js'
export {
  CONFIG_KEYS,
  SETTINGS,
  parseUpstream,
  readConfigFile,
  resolveConfig,
  type HealthCheckOptions,
  type ResolvedConfig,
  type SettingKey,
} from './config.js'
export { parseDuration } from './duration.js'
export {
  ConfigError,
  NoUpstreamError,
  UpstreamConnectTimeoutError,
  UpstreamFailedError,
  UpstreamTimeoutError,
  errorCode,
  statusForUpstreamError,
} from './errors.js'
export { HealthChecker, type CheckResult } from './health.js'
export { RoundRobin, type Policy, type PolicyName } from './policies.js'
export { Pool, Upstream, type HealthChange, type UpstreamSpec } from './upstream.js'
