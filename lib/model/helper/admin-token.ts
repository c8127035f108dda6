/**
 * Admin API tokens as the application sees them (`node.adminTokens`): create, list, update,
 * delete, and verify a bearer token against its stored hash, scope and expiry (port of
 * garage_api_admin::admin_token and the token check of api_server.rs).
 */
import { type BinaryLike, randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto'
import { updateLww } from '../../util/crdt/crdt.ts'
import { utf8 } from '../../util/data.ts'
import { ModelError } from '../../util/errors.ts'
import { nowMsec } from '../../util/time.ts'
import { type AdminTokenEntry, type AdminTokenParams, generateAdminToken } from '../admin-token-table.ts'
import type { Garage } from '../garage.ts'

/** What is known about an admin token (never its secret). */
export interface AdminTokenInfo {
  /** 24 hex characters, the part of the bearer token before the dot. */
  id: string
  name: string
  createdAt: Date
  /** Null: never expires. */
  expiresAt: Date | null
  expired: boolean
  /** Endpoint names (`GetClusterStatus`, ...) or `'*'` for every endpoint. */
  scope: string[]
}

export interface CreateAdminTokenOptions {
  name?: string
  /** Omitted or null: never expires. */
  expiresAt?: Date | null
  /** Default: `['*']`. */
  scope?: string[]
}

export interface UpdateAdminTokenOptions {
  name?: string
  /** Null: never expires. */
  expiresAt?: Date | null
  scope?: string[]
}

type ExistingToken = AdminTokenEntry & { state: { deleted: false; value: AdminTokenParams } }

const EMPTY = new Uint8Array(0)

// scrypt stands in for Garage's Argon2 (node:crypto has no Argon2): a memory-hard, salted, slow
// hash, so a leaked metadata directory does not reveal usable tokens. N=2^14, r=8, p=1 (16 MiB).
const SCRYPT = { N: 1 << 14, r: 8, p: 1 } as const
const KEY_LEN = 32

function scryptAsync(password: BinaryLike, salt: BinaryLike, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)))
  })
}

/** A salted scrypt hash of `token`, in a self-describing string. */
export async function hashAdminToken(token: string): Promise<string> {
  const salt = randomBytes(16)
  const hash = await scryptAsync(token, salt, KEY_LEN, SCRYPT)
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`
}

/** Whether `token` matches a hash made by {@link hashAdminToken}; constant-time comparison. */
export async function verifyAdminTokenHash(token: string, stored: string): Promise<boolean> {
  const parts = stored.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string]
  const expected = Buffer.from(hash, 'base64')
  const got = await scryptAsync(token, Buffer.from(salt, 'base64'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
  })
  return got.length === expected.length && timingSafeEqual(got, expected)
}

/** `node.adminTokens`: tokens for the admin API, managed at run time. */
export class AdminTokensApi {
  readonly #g: Garage
  constructor(garage: Garage) {
    this.#g = garage
  }

  /** Creates a token. The returned `secretToken` is shown once: only its hash is stored. */
  async create(options: CreateAdminTokenOptions = {}): Promise<{ secretToken: string; info: AdminTokenInfo }> {
    const { prefix, token } = generateAdminToken()
    const now = nowMsec()
    const scope = normalizeScope(options.scope ?? ['*'])
    const entry: ExistingToken = {
      prefix,
      state: {
        deleted: false,
        value: {
          created: now,
          tokenHash: await hashAdminToken(token),
          name: { ts: now, v: options.name ?? defaultName(now) },
          expiration: { ts: now, v: options.expiresAt?.getTime() ?? null },
          scope: { ts: now, v: scope },
        },
      },
    }
    await this.#g.adminTokenTable.insert(entry)
    return { secretToken: token, info: infoOf(entry, now) }
  }

  async list(): Promise<AdminTokenInfo[]> {
    const now = nowMsec()
    return (await this.#list()).map((t) => infoOf(t, now))
  }

  /** A token by exact id, or undefined. */
  async get(id: string): Promise<AdminTokenInfo | undefined> {
    const t = await this.#get(id)
    return t === undefined ? undefined : infoOf(t, nowMsec())
  }

  /** The single token whose id starts with, or whose name equals, `pattern`. */
  async search(pattern: string): Promise<AdminTokenInfo> {
    const matches = (await this.#list()).filter((t) => t.prefix.startsWith(pattern) || t.state.value.name.v === pattern)
    if (matches.length === 0) throw new ModelError('NoSuchAdminToken', `no admin token matches '${pattern}'`)
    if (matches.length > 1) throw new ModelError('BadRequest', `${matches.length} admin tokens match '${pattern}'`)
    return infoOf(matches[0] as ExistingToken, nowMsec())
  }

  async update(id: string, changes: UpdateAdminTokenOptions): Promise<AdminTokenInfo> {
    const t = await this.#getExisting(id)
    const now = nowMsec()
    let p = t.state.value
    if (changes.name !== undefined) p = { ...p, name: updateLww(p.name, changes.name, now) }
    if (changes.expiresAt !== undefined) {
      p = { ...p, expiration: updateLww(p.expiration, changes.expiresAt?.getTime() ?? null, now) }
    }
    if (changes.scope !== undefined) p = { ...p, scope: updateLww(p.scope, normalizeScope(changes.scope), now) }
    const next: ExistingToken = { prefix: t.prefix, state: { deleted: false, value: p } }
    await this.#g.adminTokenTable.insert(next)
    return infoOf(next, now)
  }

  async delete(id: string): Promise<void> {
    const t = await this.#getExisting(id)
    await this.#g.adminTokenTable.insert({ prefix: t.prefix, state: { deleted: true } })
  }

  /**
   * Checks a bearer token of the form `<id>.<secret>` for `endpoint`. Returns the token when it
   * exists, is not expired, its scope allows the endpoint and its secret matches; undefined
   * otherwise (the caller answers the same error in every case).
   */
  async verify(bearer: string, endpoint: string): Promise<AdminTokenInfo | undefined> {
    const dot = bearer.indexOf('.')
    if (dot <= 0) return undefined
    const prefix = bearer.slice(0, dot)
    if (!/^[0-9a-f]{24}$/.test(prefix)) return undefined
    // The local replica: tokens are on every node, and this runs on every admin request.
    const t = this.#g.adminTokenTable.data.read(EMPTY, utf8(prefix))
    if (t === undefined || t.state.deleted) return undefined
    const p = t.state.value
    const now = nowMsec()
    const exp = p.expiration.v
    if (exp !== null && now >= exp) return undefined
    if (!(p.scope.v.includes('*') || p.scope.v.includes(endpoint))) return undefined
    if (!(await verifyAdminTokenHash(bearer, p.tokenHash))) return undefined
    return infoOf(t as ExistingToken, now)
  }

  async #list(): Promise<ExistingToken[]> {
    const all = await this.#g.adminTokenTable.getRange(EMPTY, {
      limit: Number.MAX_SAFE_INTEGER,
      filter: (t) => !t.state.deleted,
    })
    return all as ExistingToken[]
  }

  async #get(id: string): Promise<ExistingToken | undefined> {
    // Token ids are 24 hex digits; a longer one names no token (and could not be looked up).
    if (id.length === 0 || id.length > 64) return undefined
    const t = await this.#g.adminTokenTable.get(EMPTY, utf8(id))
    return t === undefined || t.state.deleted ? undefined : (t as ExistingToken)
  }

  async #getExisting(id: string): Promise<ExistingToken> {
    const t = await this.#get(id)
    if (t === undefined) throw new ModelError('NoSuchAdminToken', `admin token ${id} does not exist`)
    return t
  }
}

function normalizeScope(scope: string[]): string[] {
  for (const s of scope) {
    if (typeof s !== 'string' || s.length === 0) throw new ModelError('BadRequest', 'scope entries must be non-empty strings')
  }
  return [...new Set(scope)].sort()
}

function defaultName(now: number): string {
  const d = new Date(now).toISOString()
  return `token_${d.slice(0, 10).replaceAll('-', '')}_${d.slice(11, 16).replace(':', '')}`
}

function infoOf(t: ExistingToken, now: number): AdminTokenInfo {
  const p = t.state.value
  const exp = p.expiration.v
  return {
    id: t.prefix,
    name: p.name.v,
    createdAt: new Date(p.created),
    expiresAt: exp === null ? null : new Date(exp),
    expired: exp !== null && now >= exp,
    scope: [...p.scope.v],
  }
}
