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
export { createAccessLog, formatCombined, LOG_FORMATS, type AccessEntry, type AccessLog, type LogFormat } from './access-log.js'
export { AdminServer, createAdmin, localSource, type AdminOptions, type AdminSource } from './admin.js'
export { AllowedHosts, parseAllowedHost, parseHost, type Arrival, type HostName } from './allowed-hosts.js'
export { DASHBOARD_CSP, renderDashboard } from './dashboard.js'
export { createMetrics } from './metrics.js'
export { buildStatus, mergeCounts, processCounts, type ProcessCounts, type StatusSnapshot, type UpstreamStatus } from './status.js'
