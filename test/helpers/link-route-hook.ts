/**
 * Preloaded into a `garage server` child (ClusterNodeOptions.preload) by the chaos suite: sends
 * each outgoing TCP connection to a peer's RPC address through the proxy of that one link
 * (source node → destination node), so every ordered pair of nodes has a link of its own that the
 * test can slow down, flap or cut, one way or both, without touching the others.
 *
 * A node advertises a single address, so proxies in front of each destination (the geo bench's
 * way) give one link per destination, not per pair: cutting one zone off, or one direction of
 * one pair, needs the source's side too. The routes come from `CHAOS_LINK_ROUTES`, a JSON object
 * `{ "127.0.0.1:<peer RPC port>": "127.0.0.1:<proxy port>" }` for this node. The RPC client
 * (undici) calls `net.connect` on the CommonJS module at connect time, which is what is
 * wrapped here; the library is unchanged.
 */
import net from 'node:net'

const routes = new Map<string, { host: string; port: number }>(
  Object.entries(JSON.parse(process.env.CHAOS_LINK_ROUTES ?? '{}') as Record<string, string>).map(([from, to]) => {
    const at = to.lastIndexOf(':')
    return [from, { host: to.slice(0, at), port: Number(to.slice(at + 1)) }]
  }),
)

const original = net.connect as (...a: unknown[]) => net.Socket
/** The destination a connection to `host:port` really goes to. */
const route = (host: string | undefined, port: number | string | undefined): { host: string; port: number } | undefined =>
  routes.get(`${host ?? 'localhost'}:${port}`)

// net.connect has several overloads; only the options-object one (undici's) and (port, host)
// are rerouted, the rest are passed through.
const connect = (...args: unknown[]): net.Socket => {
  const [first, second] = args
  if (typeof first === 'object' && first !== null && 'port' in first) {
    const o = first as net.TcpNetConnectOpts
    const to = route(o.host, o.port)
    if (to !== undefined) return original.apply(net, [{ ...o, host: to.host, port: to.port }, ...args.slice(1)])
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    const to = route(typeof second === 'string' ? second : undefined, first)
    if (to !== undefined) return original.apply(net, [to.port, to.host, ...args.slice(2)])
  }
  return original.apply(net, args)
}
net.connect = connect as typeof net.connect
net.createConnection = connect as typeof net.createConnection
