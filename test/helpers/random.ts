import { mulberry32 } from '../../lib/rpc/layout/graph-algo.ts'

/** A small seeded PRNG (the layout's mulberry32) so property tests are reproducible. */
export const rng = mulberry32

export const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T
export const int = (r: () => number, n: number): number => Math.floor(r() * n)
export const bytes = (r: () => number, n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(r, 256))
