// The package's public API: re-exports only. Everything else is internal and may move.
export { Balancer, createBalancer } from './balancer.js'
export {
  DEFAULTS,
  POLICY_NAMES,
  type BalancerOptions,
  type HashKey,
  type HealthCheckOptions,
  type PolicyName,
  type StickyOptions,
  type UpstreamSpec,
} from './options.js'
export { readConfigFile } from './config/file.js'
export { resolveConfig, type ResolvedConfig } from './config/resolve.js'
export { CONFIG_KEYS, SETTINGS, type SettingKey } from './config/settings.js'
export {
  ConfigError,
  InvalidResponseError,
  NoUpstreamError,
  UpstreamConnectTimeoutError,
  UpstreamFailedError,
  UpstreamTimeoutError,
} from './errors.js'
export { AdminServer, createAdmin, type AdminOptions } from './admin/server.js'
export { createAccessLog, LOG_FORMATS, type AccessEntry, type AccessLog, type LogFormat } from './observe/access-log.js'
export type { StatusSnapshot, UpstreamStatus } from './observe/status.js'
export type { Policy } from './select/policy.js'
export type { HealthChange, Upstream } from './upstreams/upstream.js'
export type { Pool } from './upstreams/pool.js'
