/**
 * What membership did, read from the nodes' own logs rather than polled: lib/rpc/system.ts logs
 * `node <id16> is down: 4 pings failed in a row` (warn) when a peer fails its 4th ping in a row
 * (Garage's rule) and `node <id16> at <addr> is up again` (info) when it reconnects, which also
 * schedules a full anti-entropy pass of every table on that node (TableSyncer.peerUp). A poll of
 * GetClusterStatus every 300 ms can miss a short down-and-up; the log cannot.
 */
import type { ReplicatedCluster } from '../helpers/cluster.ts'
import type { ServerProcess } from '../helpers/server-process.ts'

/** A node (`observer`) changing its view of `peer`. */
export interface PeerEvent {
  observer: number
  peer: number
  kind: 'down' | 'up'
}

/** Where each node's output stood (a restarted node's new process starts from 0). */
export type OutputMark = Map<number, { proc: ServerProcess; offset: number }>

export function markOutputs(c: ReplicatedCluster): OutputMark {
  return new Map(c.nodes.map((n, i) => [i, { proc: n.proc, offset: n.proc.output().length }]))
}

const DOWN = /node ([0-9a-f]{16}) is down: \d+ pings failed in a row/g
const UP = /node ([0-9a-f]{16}) at \S+ is up again/g

/** The peer events every node logged since `mark`, in log order per observer. */
export function peerEventsSince(c: ReplicatedCluster, mark: OutputMark): PeerEvent[] {
  const peerOf = (short: string): number => c.nodes.findIndex((n) => n.id.startsWith(short))
  const out: PeerEvent[] = []
  for (const [i, n] of c.nodes.entries()) {
    const m = mark.get(i)
    const text = n.proc.output().slice(m !== undefined && m.proc === n.proc ? m.offset : 0)
    const found: Array<{ at: number; ev: PeerEvent }> = []
    for (const x of text.matchAll(DOWN))
      found.push({ at: x.index, ev: { observer: i, peer: peerOf(x[1] as string), kind: 'down' } })
    for (const x of text.matchAll(UP)) found.push({ at: x.index, ev: { observer: i, peer: peerOf(x[1] as string), kind: 'up' } })
    out.push(...found.sort((a, b) => a.at - b.at).map((f) => f.ev))
  }
  return out
}

/** `{ down, up }` counts of events about `peer` (or every peer) seen by the other nodes. */
export function countEvents(events: PeerEvent[], peer?: number): { down: number; up: number } {
  const about = events.filter((e) => peer === undefined || e.peer === peer)
  return { down: about.filter((e) => e.kind === 'down').length, up: about.filter((e) => e.kind === 'up').length }
}
