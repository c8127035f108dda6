/** Background worker endpoints (port of garage_api_admin::worker). */
import type { WorkerInfo } from '../../util/background/worker.ts'
import type { NodeAdminContext } from './context.ts'
import { badRequest } from './errors.ts'
import { localEndpoint } from './node-rpc.ts'
import { Fields } from './request.ts'

function workerInfoResponse(w: WorkerInfo) {
  const queue = w.info.queueLength
  return {
    id: w.id,
    name: w.name,
    // Garage's states are busy / throttled / idle / done; a worker waiting to retry after an
    // error is idle (its errors are counted separately).
    state: w.state === 'error' ? 'idle' : w.state,
    errors: w.errors,
    consecutiveErrors: w.consecutiveErrors,
    lastError:
      w.lastError === undefined
        ? null
        : { message: w.lastError.message, secsAgo: Math.floor((Date.now() - w.lastError.at) / 1000) },
    tranquility: null,
    progress: typeof w.info.progress === 'string' ? w.info.progress : null,
    queueLength: typeof queue === 'number' ? queue : null,
    persistentErrors: null,
    freeform: Object.entries(w.info).map(([k, v]) => `${k}: ${v}`),
  }
}

/** ListWorkers: `{ busyOnly?, errorOnly? }`. */
export const listWorkers = localEndpoint({
  parse(body) {
    const f = new Fields(body)
    return { busyOnly: f.optBool('busyOnly') ?? false, errorOnly: f.optBool('errorOnly') ?? false }
  },
  run(ctx: NodeAdminContext, req: { busyOnly: boolean; errorOnly: boolean }) {
    return ctx.node
      .workers()
      .filter((w) => (!req.busyOnly || w.state === 'busy') && (!req.errorOnly || w.errors > 0))
      .map(workerInfoResponse)
  },
})

/** GetWorkerInfo: `{ id }`. */
export const getWorkerInfo = localEndpoint({
  parse: (body) => ({ id: new Fields(body).int('id') }),
  run(ctx: NodeAdminContext, req: { id: number }) {
    const w = ctx.node.workers().find((x) => x.id === req.id)
    if (w === undefined) throw badRequest(`No worker with id ${req.id}`)
    return workerInfoResponse(w)
  },
})

/** GetWorkerVariable: `{ variable? }`; all variables when absent. */
export const getWorkerVariable = localEndpoint({
  parse: (body) => ({ variable: new Fields(body).optString('variable') ?? null }),
  run(ctx: NodeAdminContext, req: { variable: string | null }) {
    const vars = ctx.node.variables()
    if (req.variable === null) return Object.fromEntries([...vars].map(([k, v]) => [k, v.get()]))
    const v = vars.get(req.variable)
    if (v === undefined) throw unknownVariable(req.variable, vars.keys())
    return { [req.variable]: v.get() }
  },
})

/** SetWorkerVariable: `{ variable, value }`. */
export const setWorkerVariable = localEndpoint({
  parse(body) {
    const f = new Fields(body)
    return { variable: f.string('variable'), value: f.string('value') }
  },
  run(ctx: NodeAdminContext, req: { variable: string; value: string }) {
    const vars = ctx.node.variables()
    const v = vars.get(req.variable)
    if (v === undefined) throw unknownVariable(req.variable, vars.keys())
    try {
      v.set(req.value)
    } catch (err) {
      throw badRequest(`invalid value for ${req.variable}: ${(err as Error).message}`)
    }
    return { variable: req.variable, value: v.get() }
  },
})

function unknownVariable(name: string, known: Iterable<string>) {
  return badRequest(`unknown worker variable '${name}' (known: ${[...known].join(', ') || 'none'})`)
}
