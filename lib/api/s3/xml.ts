/** XML bodies of the S3 API, built and parsed with fast-xml-parser (port of garage_api_s3::xml). */
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser'
import { ApiError } from '../common/errors.ts'

export const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/'

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', suppressEmptyNode: false })

/** `<?xml ...?><root xmlns="...">...</root>`; `undefined` fields are omitted, arrays repeat the tag. */
export function renderXml(root: string, content: Record<string, unknown>, xmlns: string | null = S3_XMLNS): string {
  const body = xmlns === null ? content : { '@_xmlns': xmlns, ...content }
  return `<?xml version="1.0" encoding="UTF-8"?>${builder.build({ [root]: body }) as string}`
}

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  processEntities: true,
  removeNSPrefix: true,
  ignoreDeclaration: true,
})

export type XmlNode = string | { [tag: string]: XmlNode | XmlNode[] }

/** Parses a request body; anything that is not well-formed XML is `MalformedXML`. */
export function parseXml(text: string): Record<string, XmlNode | XmlNode[]> {
  const valid = XMLValidator.validate(text)
  if (valid !== true) throw new ApiError('MalformedXML', `The XML you provided was not well-formed: ${valid.err.msg}`)
  try {
    return parser.parse(text) as Record<string, XmlNode | XmlNode[]>
  } catch (err) {
    throw new ApiError('MalformedXML', 'The XML you provided was not well-formed', { cause: err })
  }
}

/** The child elements named `tag` (zero, one or many) of a parsed node. */
export function xmlChildren(node: XmlNode | XmlNode[] | undefined, tag: string): XmlNode[] {
  if (node === undefined || typeof node === 'string' || Array.isArray(node)) return []
  const c = node[tag]
  if (c === undefined) return []
  return Array.isArray(c) ? c : [c]
}

/** The text of the single child `tag`, trimmed unless `raw`; undefined when absent. */
export function xmlText(node: XmlNode | XmlNode[] | undefined, tag: string, raw = false): string | undefined {
  const c = xmlChildren(node, tag)
  if (c.length === 0) return undefined
  if (c.length > 1) throw new ApiError('MalformedXML', `more than one <${tag}> element`)
  const v = c[0]
  if (typeof v === 'string') return raw ? v : v.trim()
  if (v !== undefined && typeof v === 'object' && Object.keys(v).every((k) => k === '#text')) {
    return ''
  }
  throw new ApiError('MalformedXML', `<${tag}> must contain text`)
}
