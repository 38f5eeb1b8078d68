/** `POST /jobs` and `GET /jobs/<id>`: background jobs over HTTP. */
import type { IncomingMessage } from 'node:http'
import type { BodyAccount } from '../body-budget.js'
import { BodyBudgetError, BodyTooLargeError, QueueFullError } from '../errors.js'
import { readBody } from '../read-body.js'
import { liveJson, text, type BufferedResponse } from '../response.js'
import type { JobQueue, JobType } from './types.js'

/** The path jobs are posted to; a job is read at `/jobs/<id>`. */
export const JOBS_PATH = '/jobs'

/** Most bytes of a `POST /jobs` body: a job description, not a payload. */
export const JOB_BODY_MAX_BYTES = 16 * 1024

/** What a job id looks like: a random (version 4) UUID. */
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** The answer when the queue cannot take or tell: Redis down, or the in-memory queue full. */
function unavailable(err: unknown): BufferedResponse {
  const why = err instanceof QueueFullError ? `${err.message}` : 'the job queue (Redis) is not answering'
  return text(503, `Service Unavailable: ${why}; try again shortly`, { 'cache-control': 'no-store', 'retry-after': '1' })
}

const bad = (line: string): BufferedResponse => text(400, `Bad Request: ${line}`)

/**
 * `POST /jobs` with a JSON body like `{"type":"report","ms":2000}`: queues the job and answers
 * `202 Accepted`, `Location: /jobs/<id>` and the job as JSON. A body that is not JSON, not an
 * object, not a known type or not that type's shape gets 400 with one line; a body type other
 * than JSON gets 415.
 */
export async function postJob(
  req: IncomingMessage,
  account: BodyAccount,
  queue: JobQueue,
  types: Readonly<Record<string, JobType>>,
  maxBodyBytesTotal: number,
): Promise<BufferedResponse> {
  const type = req.headers['content-type']
  if (type !== undefined && !/^application\/json\s*(;|$)/i.test(type)) {
    return text(415, `Unsupported Media Type: POST ${JOBS_PATH} takes application/json, not ${JSON.stringify(type)}`)
  }
  let body: Buffer
  try {
    body = await readBody(req, JOB_BODY_MAX_BYTES, account)
  } catch (err) {
    if (err instanceof BodyTooLargeError)
      return text(413, `Payload Too Large: a job is at most ${JOB_BODY_MAX_BYTES} bytes of JSON`, { connection: 'close' })
    if (err instanceof BodyBudgetError) {
      return text(503, `Service Unavailable: request bodies held at once would pass ${maxBodyBytesTotal} bytes; try again later`, {
        connection: 'close',
      })
    }
    return bad(`request body incomplete: ${(err as Error).message}`)
  }
  let value: unknown
  try {
    value = JSON.parse(body.toString())
  } catch {
    return bad('the body is not JSON; send a job like {"type":"report","ms":2000}')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return bad('the body is not a JSON object like {"type":"report","ms":2000}')
  const { type: name, ...fields } = value as Record<string, unknown>
  const jobType = typeof name === 'string' && Object.hasOwn(types, name) ? types[name] : undefined
  if (jobType === undefined) return bad(`type: ${JSON.stringify(name) ?? 'missing'} is not a job type (${Object.keys(types).join(', ')})`)
  const data = jobType.parse(fields)
  if (typeof data === 'string') return bad(data)
  try {
    const job = await queue.add(name as string, data)
    return liveJson(job, 202, { location: `${JOBS_PATH}/${job.id}` })
  } catch (err) {
    return unavailable(err)
  }
}

/** `GET /jobs/<id>`: the job as JSON, from whichever backend; 404 for an id no job has. */
export async function getJob(id: string, queue: JobQueue): Promise<BufferedResponse> {
  const notFound = text(404, `Not Found: no job ${JSON.stringify(id)}`)
  if (!JOB_ID.test(id)) return notFound
  try {
    const job = await queue.get(id)
    return job === undefined ? notFound : liveJson(job)
  } catch (err) {
    return unavailable(err)
  }
}
