export { BodyBudget, type BodyAccount } from './body-budget.js'
export { ResponseCache, entrySize, isStorable, type CacheStatus, type ResponseCacheOptions } from './cache.js'
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
export { BodyBudgetError, BodyTooLargeError, ConfigError } from './errors.js'
export { liveJson, pathOf, text, type BufferedResponse, type Handler } from './response.js'
export { Backend, createBackend, listeningUrl } from './server.js'
export { RequestStats } from './stats.js'
export { WS_PATH, WebSocketEcho, type WebSocketEchoOptions } from './websocket.js'
