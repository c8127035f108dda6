/**
 * LaunchRepairOperation (port of garage_api_admin::repair's entry point): `{ repairType }`, one
 * of `tables`, `blocks`, `versions`, `multipartUploads`, `blockRefs`, `blockRc`, `rebalance` or
 * `{ scrub: start|pause|resume|cancel }`. Node-scoped; the repair runs in the background on each
 * node addressed (see ListWorkers), the answer is `null` per node.
 */
import {
  launchRepair,
  parseRepairType,
  RepairUnavailableError,
  type RepairType,
  SCRUB_COMMANDS,
  SIMPLE_REPAIRS,
} from '../../model/repair.ts'
import { silentLogger } from '../../util/logger.ts'
import type { NodeAdminContext } from './context.ts'
import { AdminError, badRequest } from './errors.ts'
import { localEndpoint } from './node-rpc.ts'
import { Fields } from './request.ts'

export const launchRepairOperation = localEndpoint({
  parse(body): RepairType {
    const f = new Fields(body)
    if (!f.has('repairType')) throw badRequest("request body: 'repairType' is required")
    const t = parseRepairType((body as { repairType: unknown }).repairType)
    if (t === undefined) {
      throw badRequest(
        `invalid repairType: expected one of ${SIMPLE_REPAIRS.join(', ')} or { "scrub": ${SCRUB_COMMANDS.map((c) => `"${c}"`).join(' | ')} }`,
      )
    }
    return t
  },
  async run(ctx: NodeAdminContext, op: RepairType) {
    const spawn = ctx.node.spawnWorker
    if (spawn === undefined) throw new AdminError('NotImplemented', 'this node cannot start background workers')
    try {
      await launchRepair(
        {
          garage: ctx.garage,
          spawn: (w) => spawn(w),
          metadataDir: ctx.node.metadataDir,
          log: ctx.node.log ?? silentLogger,
        },
        op,
      )
    } catch (err) {
      if (err instanceof RepairUnavailableError) {
        throw new AdminError('NotImplemented', err.message, { cause: err })
      }
      throw err
    }
    return null
  },
})
