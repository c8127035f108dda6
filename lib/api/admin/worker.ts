/** Background worker endpoints (port of garage_api_admin::worker). */
import type { WorkerInfo } from '../../util/background/worker.ts'
import type { AdminContext } from './context.ts'
import { onNodes } from './context.ts'
import { badRequest } from './errors.ts'
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
    progress: null,
    queueLength: typeof queue === 'number' ? queue : null,
    persistentErrors: null,
    freeform: Object.entries(w.info).map(([k, v]) => `${k}: ${v}`),
  }
}

export function handleListWorkers(ctx: AdminContext) {
  const f = new Fields(ctx.body)
  const busyOnly = f.optBool('busyOnly') ?? false
  const errorOnly = f.optBool('errorOnly') ?? false
  return onNodes(ctx, () =>
    ctx.node
      .workers()
      .filter((w) => (!busyOnly || w.state === 'busy') && (!errorOnly || w.errors > 0))
      .map(workerInfoResponse),
  )
}

export function handleGetWorkerInfo(ctx: AdminContext) {
  const id = new Fields(ctx.body).int('id')
  return onNodes(ctx, () => {
    const w = ctx.node.workers().find((x) => x.id === id)
    if (w === undefined) throw badRequest(`No worker with id ${id}`)
    return workerInfoResponse(w)
  })
}

export function handleGetWorkerVariable(ctx: AdminContext) {
  const variable = new Fields(ctx.body).optString('variable')
  return onNodes(ctx, () => {
    const vars = ctx.node.variables()
    if (variable === undefined) return Object.fromEntries([...vars].map(([k, v]) => [k, v.get()]))
    const v = vars.get(variable)
    if (v === undefined) throw unknownVariable(variable, vars.keys())
    return { [variable]: v.get() }
  })
}

export function handleSetWorkerVariable(ctx: AdminContext) {
  const f = new Fields(ctx.body)
  const variable = f.string('variable')
  const value = f.string('value')
  return onNodes(ctx, () => {
    const vars = ctx.node.variables()
    const v = vars.get(variable)
    if (v === undefined) throw unknownVariable(variable, vars.keys())
    try {
      v.set(value)
    } catch (err) {
      throw badRequest(`invalid value for ${variable}: ${(err as Error).message}`)
    }
    return { variable, value: v.get() }
  })
}

function unknownVariable(name: string, known: Iterable<string>) {
  return badRequest(`unknown worker variable '${name}' (known: ${[...known].join(', ') || 'none'})`)
}
