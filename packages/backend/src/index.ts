export { BodyBudget, type BodyAccount } from './body-budget.js'
export { ResponseCache, type ResponseCacheOptions } from './cache/memory-cache.js'
export { entrySize, isStorable, type CacheLayer, type CacheStatus } from './cache/rules.js'
export {
  CLI_KEYS,
  parseId,
  parseSize,
  parseWholeNumber,
  resolveCliConfig,
  resolveOptions,
  type BackendOptions,
  type CliConfig,
  type CliKey,
  type ResolvedOptions,
} from './config.js'
export { BodyBudgetError, BodyTooLargeError, ConfigError, QueueFullError, RedisUnavailableError } from './errors.js'
export { SharedResponseCache, type SharedResponseCacheOptions } from './cache/shared-cache.js'
export { report } from './jobs/report.js'
export type { JobQueue, JobRun, JobState, JobType, JobView } from './jobs/types.js'
export type { SessionStore, Visit } from './sessions/store.js'
export { liveJson, pathOf, text, type BufferedResponse, type Handler } from './response.js'
export { Backend, createBackend, listeningUrl } from './server.js'
export { RequestStats } from './stats.js'
export { WS_PATH, WebSocketEcho, type WebSocketEchoOptions } from './websocket.js'
export { createWorker, type JobWorker, type WorkerOptions } from './worker.js'
