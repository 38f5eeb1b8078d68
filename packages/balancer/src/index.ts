export { Balancer, createBalancer, type BalancerOptions } from './balancer.js'
export {
  CONFIG_KEYS,
  SETTINGS,
  readConfigFile,
  resolveConfig,
  type HealthCheckOptions,
  type ResolvedConfig,
  type SettingKey,
} from './config.js'
export { parseBoolean, parseDuration, parseInteger } from './values.js'
export { parseUpstream } from './upstream-spec.js'
export { HashPolicy, cookieValue, keyOf, parseHashKey, type HashKey } from './hash.js'
export { WaitQueue, type Waiter } from './queue.js'
export { Sticky, type StickyOptions } from './sticky.js'
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
export { First, LeastRequests, POLICY_NAMES, RandomTwo, RoundRobin, createPolicy, type Policy, type PolicyName } from './policies.js'
export { Pool, Upstream, type HealthChange, type UpstreamSpec } from './upstream.js'
