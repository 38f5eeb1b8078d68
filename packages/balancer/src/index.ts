export { Balancer, createBalancer, type BalancerOptions } from './balancer.js'
export {
  CONFIG_KEYS,
  SETTINGS,
  readConfigFile,
  resolveConfig,
  type HealthCheckOptions,
  type ResolvedConfig,
  type SettingKey,
} from './config/resolve.js'
export { parseBoolean, parseDuration, parseInteger } from './config/parse.js'
export { parseUpstream } from './config/parse.js'
export { HashPolicy, cookieValue, keyOf, parseHashKey, type HashKey } from './select/hash.js'
export { WaitQueue, type Waiter } from './select/queue.js'
export { Sticky, type StickyOptions } from './select/sticky.js'
export {
  ConfigError,
  NoUpstreamError,
  UpstreamConnectTimeoutError,
  UpstreamFailedError,
  UpstreamTimeoutError,
  errorCode,
  statusForUpstreamError,
} from './errors.js'
export { HealthChecker, type CheckResult } from './upstreams/health-check.js'
export { First, LeastRequests, POLICY_NAMES, RandomTwo, RoundRobin, createPolicy, type Policy, type PolicyName } from './select/policies.js'
export { Pool, Upstream, type HealthChange, type UpstreamSpec } from './upstreams/upstream.js'
export { createAccessLog, formatCombined, LOG_FORMATS, type AccessEntry, type AccessLog, type LogFormat } from './observe/access-log.js'
export { AdminServer, createAdmin, localSource, type AdminOptions, type AdminSource } from './admin/server.js'
export { AllowedHosts, parseAllowedHost, parseHost, type Arrival, type HostName } from './admin/allowed-hosts.js'
export { DASHBOARD_CSP, renderDashboard } from './admin/dashboard.js'
export { createMetrics } from './observe/metrics.js'
export { buildStatus, mergeCounts, processCounts, type ProcessCounts, type StatusSnapshot, type UpstreamStatus } from './observe/status.js'
