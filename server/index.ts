/** What users import from 'forkyard'. */
export { serve, type ServeOptions } from './serve.js'
export type { Arbiter, ArbiterStatus, WorkerStatus } from './arbiter/arbiter.js'
export { ForkyardError, codes } from './errors.js'
export { requestId } from './worker/request-id.js'
export { loadConfig } from './config/load.js'
export type { ServerConfig } from './config/schema.js'
