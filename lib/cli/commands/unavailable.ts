/**
 * `garage repair …` and `garage block …`: registered under Garage's names
 * so `--help` lists them, but they need the multi-node cluster feature, which this
 * implementation does not have yet; each fails with one clear line (exit status 1).
 */

import { unavailableGroup } from '../_command.ts'

const notYet = (what: string) =>
  `\`garage ${what}\` is not available until the cluster feature lands: this node runs as a single-node cluster`

export const repairCommand = unavailableGroup(
  { name: 'repair', description: 'Start repair of node data (not available yet)' },
  {
    tables: 'Do a full sync of metadata tables',
    blocks: 'Repair (resync/rebalance) the set of stored blocks in the cluster',
    versions: 'Repropagate object deletions to the version table',
    mpu: 'Repropagate object deletions to the multipart upload table',
    'block-refs': 'Repropagate version deletions to the block ref table',
    'block-rc': 'Recalculate block reference counters',
    aliases: 'Fix inconsistency in bucket aliases',
    rebalance: 'Rebalance data blocks among HDDs on individual nodes',
    scrub: 'Verify integrity of all blocks on disc',
  },
  notYet('repair'),
)

export const blockCommand = unavailableGroup(
  { name: 'block', description: 'Low-level debug operations on data blocks (not available yet)' },
  {
    'list-errors': 'List all blocks that currently have a resync error',
    info: 'Get detailed information about a single block',
    'retry-now': 'Retry now the resync of one or many blocks',
    purge: 'Delete all objects referencing a missing block',
  },
  notYet('block'),
)
