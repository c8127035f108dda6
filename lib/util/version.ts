/**
 * The version of this software, in one place below every layer: membership reports it to peers
 * (lib/rpc/system.ts), the admin API and the OpenAPI document show it, and the metrics registry
 * labels `garage_build_info` with it.
 */

/** Our version as reported to peers, by the admin API and in metrics. @internal */
export const GARAGE_TS_VERSION = 'v0.1.0-ts'
