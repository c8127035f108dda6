/**
 * XML of the S3 API (port of garage_api_s3::xml). Responses are built with fast-xml-parser's
 * builder; request bodies are read by the small strict reader below, the one entry point for every
 * XML body a client sends ({@link readXmlBody}, or {@link parseXml} on bytes already in hand).
 *
 * The reader accepts XML the way the AWS SDKs and the common clients write it: character
 * references (decimal, hexadecimal and the five named entities; Go's encoding/xml writes `"` as
 * `&#34;`), CDATA sections, comments, processing instructions, an XML declaration in UTF-8, a
 * UTF-8 byte order mark, leading whitespace, and elements with or without the S3 namespace. It
 * refuses, with MalformedXML and before any expansion, a `<!DOCTYPE>` (hence any entity
 * declaration: no XXE, no billion laughs), invalid UTF-8, characters XML does not allow, undeclared
 * prefixes, other namespaces, text mixed with elements, and anything not well formed.
 */
import type { Readable } from 'node:stream'
import { XMLBuilder } from 'fast-xml-parser'
import { ApiError } from '../common/errors.ts'

export const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/'

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', suppressEmptyNode: false })

/** `<?xml ...?><root xmlns="...">...</root>`; `undefined` fields are omitted, arrays repeat the tag. */
export function renderXml(root: string, content: Record<string, unknown>, xmlns: string | null = S3_XMLNS): string {
  const body = xmlns === null ? content : { '@_xmlns': xmlns, ...content }
  return `<?xml version="1.0" encoding="UTF-8"?>${builder.build({ [root]: body }) as string}`
}

/**
 * One element without declaration or namespace, to place among others in document order (a list
 * mixing two element names, as ListObjectVersions' `<Version>` and `<DeleteMarker>`).
 */
export function renderXmlFragment(tag: string, content: Record<string, unknown>): string {
  return builder.build({ [tag]: content }) as string
}

/**
 * A parsed element: its text when it has no child element (`''` when empty), else its children
 * by local name (one node, or an array when the name repeats; objects have no prototype).
 */
export type XmlNode = string | { [tag: string]: XmlNode | XmlNode[] }
/** A parsed document: `{ [rootLocalName]: node }`. */
export type XmlDocument = Record<string, XmlNode | XmlNode[]>

/** Deepest element nesting accepted (S3 bodies need about 6). */
const MAX_DEPTH = 64

function malformed(detail: string): ApiError {
  return new ApiError(
    'MalformedXML',
    `The XML you provided was not well-formed or did not validate against our published schema: ${detail}`,
  )
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

/** Decodes UTF-8 strictly (a leading BOM is dropped); invalid UTF-8 is MalformedXML. */
function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8Strict.decode(bytes)
  } catch (err) {
    throw new ApiError('MalformedXML', 'The XML you provided was not valid UTF-8', { cause: err })
  }
}

/**
 * Reads a request body of at most `maxBytes` and parses it: the one way an S3 handler reads XML.
 * A larger body is MaxMessageLengthExceeded, as on AWS, and is not read further; an empty body
 * is MalformedXML.
 */
export async function readXmlBody(body: Readable, maxBytes: number): Promise<XmlDocument> {
  const doc = await readOptionalXmlBody(body, maxBytes)
  if (doc === undefined) throw malformed('the body is empty')
  return doc
}

/** {@link readXmlBody} for requests whose body may be empty (or only whitespace): `undefined`. */
export async function readOptionalXmlBody(body: Readable, maxBytes: number): Promise<XmlDocument | undefined> {
  const chunks: Buffer[] = []
  let len = 0
  for await (const chunk of body as AsyncIterable<Buffer>) {
    len += chunk.length
    if (len > maxBytes) {
      body.destroy()
      throw new ApiError('MaxMessageLengthExceeded', `Your request was too big (at most ${maxBytes} bytes here).`)
    }
    chunks.push(chunk)
  }
  const text = decodeUtf8(Buffer.concat(chunks))
  return /^[\s\uFEFF]*$/.test(text) ? undefined : parseXml(text)
}

const NAME_START_CHARS =
  'A-Za-z_:\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}'
/** An XML Name (sticky: matched at `lastIndex`). */
const NAME = new RegExp(`[${NAME_START_CHARS}][${NAME_START_CHARS}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F\\u2040]*`, 'uy')
/** Characters XML 1.0 forbids (C0 controls but tab, LF, CR; lone surrogates; U+FFFE, U+FFFF). */
const FORBIDDEN_CHAR =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching the control characters XML forbids is the point
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }
const ACCEPTED_ENCODINGS = new Set(['utf-8', 'utf8', 'us-ascii', 'ascii'])

function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  )
}

/**
 * Printable ASCII, tab and LF only, without '&', ']' or CR: text that needs no check or decoding
 * (the whitespace between elements and most values), tested without a regular expression.
 */
function isPlainText(raw: string): boolean {
  for (let k = 0; k < raw.length; k++) {
    const c = raw.charCodeAt(k)
    if (c > 0x7e || (c < 0x20 && c !== 0x09 && c !== 0x0a) || c === 0x26 || c === 0x5d) return false
  }
  return true
}

/** Literal text: line ends normalised (XML 1.0 §2.11), references decoded. */
function decodeText(raw: string): string {
  if (isPlainText(raw)) return raw
  if (FORBIDDEN_CHAR.test(raw)) throw malformed('a character XML does not allow')
  if (raw.includes(']]>')) throw malformed("']]>' outside a CDATA section")
  const text = raw.replace(/\r\n?/g, '\n')
  if (!text.includes('&')) return text
  return text.replace(/&([^;&<]{0,12});|&/g, (whole, ref: string | undefined) => {
    if (ref === undefined) throw malformed("an '&' that starts no reference")
    if (ref.startsWith('#')) {
      const m = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(ref)
      const cp = m === null ? Number.NaN : m[1] !== undefined ? Number.parseInt(m[1], 16) : Number(m[2])
      if (!isXmlChar(cp)) throw malformed(`invalid character reference ${whole.slice(0, 16)}`)
      return String.fromCodePoint(cp)
    }
    const named = Object.hasOwn(NAMED_ENTITIES, ref) ? NAMED_ENTITIES[ref] : undefined
    if (named === undefined) throw malformed(`undefined entity &${ref.slice(0, 12)};`)
    return named
  })
}

interface Open {
  qname: string
  local: string
  /** Namespace declarations made on this element (prefix → uri; '' for the default). */
  ns: Map<string, string> | undefined
  children: { [tag: string]: XmlNode | XmlNode[] }
  hasChildren: boolean
  text: string
  /** Non-whitespace text was seen (mixed content is refused once a child element appears). */
  hasText: boolean
}

/**
 * Parses an XML request body (bytes are decoded as strict UTF-8). See the module comment for what
 * is accepted.
 *
 * @throws {ApiError} MalformedXML
 */
export function parseXml(input: string | Uint8Array): XmlDocument {
  const s0 = typeof input === 'string' ? input : decodeUtf8(input)
  const s = s0.startsWith('\uFEFF') ? s0.slice(1) : s0
  const stack: Open[] = []
  let root: XmlDocument | undefined
  let i = 0
  const n = s.length

  const lookupNs = (prefix: string): string | undefined => {
    for (let k = stack.length - 1; k >= 0; k--) {
      const v = stack[k]?.ns?.get(prefix)
      if (v !== undefined) return v
    }
    return prefix === 'xml' ? 'http://www.w3.org/XML/1998/namespace' : prefix === '' ? '' : undefined
  }
  const skipSpace = () => {
    while (i < n && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++
  }
  const readName = (): string => {
    // ASCII names (all the S3 schema's) without the regular expression; others go through it.
    let j = i
    let c = s.charCodeAt(j)
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f) {
      do c = s.charCodeAt(++j)
      while (
        (c >= 0x61 && c <= 0x7a) ||
        (c >= 0x41 && c <= 0x5a) ||
        (c >= 0x30 && c <= 0x39) ||
        c === 0x5f ||
        c === 0x2d ||
        c === 0x2e ||
        c === 0x3a
      )
      if (!(c >= 0x80)) {
        const name = s.slice(i, j)
        i = j
        return name
      }
    }
    NAME.lastIndex = i
    const m = NAME.exec(s)
    if (m === null) throw malformed(`a name was expected at offset ${i}`)
    i += m[0].length
    return m[0]
  }
  const expect = (lit: string) => {
    if (!s.startsWith(lit, i)) throw malformed(`'${lit}' was expected at offset ${i}`)
    i += lit.length
  }
  const skipUntil = (end: string, what: string): string => {
    const j = s.indexOf(end, i)
    if (j < 0) throw malformed(`unterminated ${what}`)
    const inner = s.slice(i, j)
    i = j + end.length
    return inner
  }

  // Prolog: whitespace, the XML declaration (once, first), comments and PIs.
  skipSpace()
  if (s.startsWith('<?xml', i) && /[\s?]/.test(s[i + 5] ?? '')) {
    i += 5
    const decl = skipUntil('?>', 'XML declaration')
    const enc = /\bencoding\s*=\s*(["'])([^"']*)\1/.exec(decl)
    if (!/^\s+version\s*=\s*(["'])1\.[0-9]+\1/.test(decl)) throw malformed('an XML declaration without a version')
    if (enc !== null && !ACCEPTED_ENCODINGS.has((enc[2] as string).toLowerCase())) {
      throw malformed(`encoding ${JSON.stringify(enc[2]).slice(0, 40)} is not supported; send UTF-8`)
    }
  }

  while (i < n) {
    const lt = s.indexOf('<', i)
    const top = stack[stack.length - 1]
    // Character data up to the next markup.
    const raw = s.slice(i, lt < 0 ? n : lt)
    if (raw.length > 0) {
      if (top === undefined) {
        if (/[^ \t\r\n]/.test(raw)) throw malformed('text outside the root element')
      } else {
        const text = decodeText(raw)
        top.text += text
        if (/[^ \t\r\n]/.test(raw)) top.hasText = true
      }
    }
    if (lt < 0) break
    i = lt
    if (s.startsWith('<!--', i)) {
      i += 4
      const c = skipUntil('-->', 'comment')
      if (c.includes('--') || c.endsWith('-')) throw malformed("'--' inside a comment")
    } else if (s.startsWith('<![CDATA[', i)) {
      if (top === undefined) throw malformed('CDATA outside the root element')
      i += 9
      const c = skipUntil(']]>', 'CDATA section')
      if (FORBIDDEN_CHAR.test(c)) throw malformed('a character XML does not allow')
      top.text += c.replace(/\r\n?/g, '\n')
      if (/[^ \t\r\n]/.test(c)) top.hasText = true
    } else if (s.startsWith('<!', i)) {
      // <!DOCTYPE, <!ENTITY, <!ELEMENT ...: refused before anything is expanded.
      throw malformed('document type declarations and entity declarations are not allowed')
    } else if (s.startsWith('<?', i)) {
      i += 2
      const target = readName()
      if (target.toLowerCase() === 'xml') throw malformed('an XML declaration that is not at the start')
      skipUntil('?>', 'processing instruction')
    } else if (s.startsWith('</', i)) {
      i += 2
      const name = readName()
      skipSpace()
      expect('>')
      const el = stack.pop()
      if (el === undefined || el.qname !== name) throw malformed(`unexpected </${name.slice(0, 64)}>`)
      if (el.hasChildren && el.hasText) throw malformed(`<${el.local}> mixes text and elements`)
      const node: XmlNode = el.hasChildren ? el.children : el.text
      const parent = stack[stack.length - 1]
      if (parent === undefined) root = { [el.local]: node }
      else addChild(parent, el.local, node)
    } else {
      if (root !== undefined) throw malformed('more than one root element')
      if (stack.length >= MAX_DEPTH) throw malformed(`elements nested deeper than ${MAX_DEPTH}`)
      i += 1
      const qname = readName()
      let attrs: Map<string, string> | undefined
      for (;;) {
        const before = i
        skipSpace()
        if (s[i] === '>' || s.startsWith('/>', i)) break
        if (i === before) throw malformed(`whitespace was expected at offset ${i}`)
        const an = readName()
        skipSpace()
        expect('=')
        skipSpace()
        const q = s[i]
        if (q !== '"' && q !== "'") throw malformed(`a quoted attribute value was expected at offset ${i}`)
        i += 1
        const v = skipUntil(q, 'attribute value')
        if (v.includes('<')) throw malformed("'<' in an attribute value")
        attrs ??= new Map()
        if (attrs.has(an)) throw malformed(`attribute ${an.slice(0, 64)} given twice`)
        attrs.set(an, decodeText(v))
      }
      let ns: Map<string, string> | undefined
      for (const [an, v] of attrs ?? []) {
        const prefix = an === 'xmlns' ? '' : an.startsWith('xmlns:') ? an.slice(6) : undefined
        if (prefix === undefined) continue
        ns ??= new Map()
        ns.set(prefix, v)
      }
      const el: Open = { qname, local: qname, ns, children: Object.create(null), hasChildren: false, text: '', hasText: false }
      stack.push(el)
      const colon = qname.indexOf(':')
      const prefix = colon < 0 ? '' : qname.slice(0, colon)
      el.local = colon < 0 ? qname : qname.slice(colon + 1)
      if (el.local === '' || el.local.includes(':')) throw malformed(`invalid element name ${qname.slice(0, 64)}`)
      const uri = lookupNs(prefix)
      if (uri === undefined) throw malformed(`undeclared namespace prefix ${prefix.slice(0, 64)}`)
      if (uri !== '' && uri !== S3_XMLNS) throw malformed(`unexpected namespace ${uri.slice(0, 100)}`)
      if (s.startsWith('/>', i)) {
        i += 2
        stack.pop()
        const parent = stack[stack.length - 1]
        if (parent === undefined) root = { [el.local]: '' }
        else addChild(parent, el.local, '')
      } else {
        i += 1
      }
    }
  }
  if (stack.length > 0) throw malformed(`<${(stack[stack.length - 1] as Open).local}> is not closed`)
  if (root === undefined) throw malformed('no root element')
  return root
}

/** A document already parsed, or the body to parse (for parsers also called on literal XML). */
export function asXmlDocument(body: XmlDocument | string | Uint8Array): XmlDocument {
  return typeof body === 'string' || body instanceof Uint8Array ? parseXml(body) : body
}

function addChild(parent: Open, name: string, node: XmlNode): void {
  parent.hasChildren = true
  const prev = parent.children[name]
  if (prev === undefined) parent.children[name] = node
  else if (Array.isArray(prev)) prev.push(node)
  else parent.children[name] = [prev, node]
}

/** The child elements named `tag` (zero, one or many) of a parsed node. */
export function xmlChildren(node: XmlNode | XmlNode[] | undefined, tag: string): XmlNode[] {
  if (node === undefined || typeof node === 'string' || Array.isArray(node)) return []
  const c = Object.hasOwn(node, tag) ? node[tag] : undefined
  if (c === undefined) return []
  return Array.isArray(c) ? c : [c]
}

/** The names of the child elements of a parsed node. */
export function xmlChildNames(node: XmlNode | XmlNode[] | undefined): string[] {
  if (node === undefined || typeof node === 'string' || Array.isArray(node)) return []
  return Object.keys(node)
}

/**
 * AWS validates bodies against its schema: an element it does not know is MalformedXML. `allowed`
 * lists every element AWS defines at that place (including those we ignore).
 */
export function xmlOnly(node: XmlNode | XmlNode[] | undefined, allowed: readonly string[], where: string): void {
  for (const name of xmlChildNames(node)) {
    if (!allowed.includes(name)) throw malformed(`unexpected <${name.slice(0, 64)}> in <${where}>`)
  }
}

/** The single root element named `root` of a document; anything else is MalformedXML. */
export function xmlRoot(doc: XmlDocument, root: string): XmlNode {
  const names = Object.keys(doc)
  const node = doc[root]
  if (names.length !== 1 || node === undefined || Array.isArray(node)) {
    throw malformed(`expected a <${root}> element, got <${(names[0] ?? '').slice(0, 64)}>`)
  }
  return node
}

/** The text of the single child `tag`, trimmed unless `raw`; undefined when absent. */
export function xmlText(node: XmlNode | XmlNode[] | undefined, tag: string, raw = false): string | undefined {
  const c = xmlChildren(node, tag)
  if (c.length === 0) return undefined
  if (c.length > 1) throw new ApiError('MalformedXML', `more than one <${tag}> element`)
  const v = c[0]
  if (typeof v === 'string') return raw ? v : v.trim()
  throw new ApiError('MalformedXML', `<${tag}> must contain text`)
}
