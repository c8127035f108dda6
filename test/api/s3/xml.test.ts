/**
 * The XML reader of S3 request bodies: every form real clients write, and every form it refuses.
 *
 * The SDK rows reproduce each SDK's own text escaping (checked in their sources):
 * - Go (aws-sdk-go v1 through encoding/xml, and smithy-go in v2, a copy of its EscapeText; rclone,
 *   restic, ...): `"` → `&#34;`, `'` → `&#39;`, tab/LF/CR → `&#x9;` `&#xA;` `&#xD;`.
 * - Java SDK v2 (`protocols/xml/internal/marshall/XmlWriter.java`) and the JavaScript SDK v3
 *   (`@aws-sdk/xml-builder` escapeElement, 3.972): `&quot;` `&apos;` `&#x0D;` `&#x0A;`, with an
 *   XML declaration (Java) or none (JS).
 * - Python (botocore through ElementTree.tostring): only `&` `<` `>`; quotes and control characters
 *   raw; no declaration.
 * - PHP (aws-sdk-php `XmlBody`, XMLWriter::writeRaw): values raw, `<?xml version="1.0"
 *   encoding="UTF-8"?>` and a newline first.
 * - .NET (System.Xml with SecurityElement-style escaping): `&quot;` `&apos;`, a UTF-8 byte order
 *   mark and `<?xml version="1.0" encoding="utf-8"?>`.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parseCreateBucketBody } from '../../../lib/api/s3/bucket.ts'
import { parseCorsConfiguration } from '../../../lib/api/s3/cors.ts'
import { parseDeleteBody } from '../../../lib/api/s3/delete.ts'
import { parseLifecycleConfiguration } from '../../../lib/api/s3/lifecycle.ts'
import { parseCompleteBody } from '../../../lib/api/s3/multipart.ts'
import { parseWebsiteConfiguration } from '../../../lib/api/s3/website.ts'
import { parseXml, S3_XMLNS } from '../../../lib/api/s3/xml.ts'

const errorCode = (f: () => unknown): string | undefined => {
  try {
    f()
    return undefined
  } catch (err) {
    return (err as { code?: string }).code ?? String(err)
  }
}

/** A tree to write: an element with text, or with children. */
type El = [name: string, content: string | El[]]

interface Writer {
  name: string
  escape: (text: string) => string
  /** What comes before the root element. */
  prolog: string
  /** Whether the root element carries the S3 namespace. */
  xmlns: boolean
  /** Raw CR in text is normalised to LF by any XML reader: only writers that escape it keep it. */
  keepsCR: boolean
}

const replaceAll = (table: Record<string, string>) => (s: string) => s.replace(/[\s\S]/g, (c) => table[c] ?? c)

const WRITERS: Writer[] = [
  {
    name: 'Go (encoding/xml, smithy-go; rclone, aws-sdk-go)',
    escape: replaceAll({
      '&': '&amp;',
      '<': '&lt;',
      '>': '&gt;',
      '"': '&#34;',
      "'": '&#39;',
      '\t': '&#x9;',
      '\n': '&#xA;',
      '\r': '&#xD;',
    }),
    prolog: '',
    xmlns: true,
    keepsCR: true,
  },
  {
    name: 'Java SDK v2 (XmlWriter)',
    escape: replaceAll({ '&': '&amp;', '"': '&quot;', "'": '&apos;', '<': '&lt;', '>': '&gt;', '\r': '&#x0D;', '\n': '&#x0A;' }),
    prolog: '<?xml version="1.0" encoding="UTF-8"?>',
    xmlns: true,
    keepsCR: true,
  },
  {
    name: 'JavaScript SDK v3 (@aws-sdk/xml-builder)',
    escape: replaceAll({
      '&': '&amp;',
      '"': '&quot;',
      "'": '&apos;',
      '<': '&lt;',
      '>': '&gt;',
      '\r': '&#x0D;',
      '\n': '&#x0A;',
      '\u0085': '&#x85;',
      '\u2028': '&#x2028;',
    }),
    prolog: '',
    xmlns: true,
    keepsCR: true,
  },
  {
    name: 'Python (botocore, ElementTree)',
    escape: replaceAll({ '&': '&amp;', '<': '&lt;', '>': '&gt;' }),
    prolog: '',
    xmlns: true,
    keepsCR: false,
  },
  {
    name: 'PHP (aws-sdk-php, XMLWriter::writeRaw)',
    // writeRaw escapes nothing; `&` and `<` would not be XML at all, so only other text is written.
    escape: (s) => s,
    prolog: '<?xml version="1.0" encoding="UTF-8"?>\n',
    xmlns: true,
    keepsCR: false,
  },
  {
    name: '.NET (BOM, declaration, &quot;)',
    escape: replaceAll({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' }),
    prolog: '\uFEFF<?xml version="1.0" encoding="utf-8"?>\r\n',
    xmlns: true,
    keepsCR: false,
  },
  {
    name: 'hand-written (no namespace, indented, CDATA-free)',
    escape: replaceAll({ '&': '&amp;', '<': '&lt;' }),
    prolog: '  \n',
    xmlns: false,
    keepsCR: false,
  },
]

function write(w: Writer, root: El): string {
  const el = ([name, content]: El, top: boolean): string => {
    const attrs = top && w.xmlns ? ` xmlns="${S3_XMLNS}"` : ''
    const inner = typeof content === 'string' ? w.escape(content) : content.map((c) => el(c, false)).join('')
    return `<${name}${attrs}>${inner}</${name}>`
  }
  return w.prolog + el(root, true)
}

const ETAG = '523c70d14047f5c79263b990e1d46ad2'
/** Text every writer can carry (PHP writes raw, so no `&` or `<` here). */
const AWKWARD = `it's "quoted"\ttab > gt é 😀`

describe('CompleteMultipartUpload as each SDK writes it', () => {
  for (const w of WRITERS) {
    test(w.name, () => {
      const body = write(w, [
        'CompleteMultipartUpload',
        [
          [
            'Part',
            [
              ['ETag', `"${ETAG}"`],
              ['PartNumber', '1'],
            ],
          ],
          // Element order inside a Part is free; a checksum is allowed.
          [
            'Part',
            [
              ['PartNumber', '2'],
              ['ChecksumCRC32', 'AAAAAA=='],
              ['ETag', `"${ETAG.replace('5', '6')}"`],
            ],
          ],
          [
            'Part',
            [
              ['PartNumber', '3'],
              ['ETag', ETAG.replace('5', '7')],
            ],
          ],
        ],
      ])
      assert.deepEqual(parseCompleteBody(parseXml(body)), [
        { partNumber: 1, etag: ETAG },
        { partNumber: 2, etag: ETAG.replace('5', '6'), checksums: { CRC32: 'AAAAAA==' } },
        { partNumber: 3, etag: ETAG.replace('5', '7') },
      ])
    })
  }
})

describe('DeleteObjects as each SDK writes it', () => {
  for (const w of WRITERS) {
    test(w.name, () => {
      const keys = [AWKWARD, 'plain/key.txt', ' leading and trailing spaces ']
      if (w.escape('&<') !== '&<') keys.push('a&b<c>d')
      const body = write(w, ['Delete', [...keys.map((k): El => ['Object', [['Key', k]]]), ['Quiet', 'true']]])
      assert.deepEqual(parseDeleteBody(parseXml(body)), { quiet: true, keys })
    })
  }

  test('a CR in a key survives when the writer escapes it, and becomes LF when it is raw (XML 1.0 §2.11)', () => {
    for (const w of WRITERS) {
      const body = write(w, ['Delete', [['Object', [['Key', 'a\r\nb\rc']]]]])
      const expected = w.keepsCR ? 'a\r\nb\rc' : 'a\nb\nc'
      assert.deepEqual(parseDeleteBody(parseXml(body)).keys, [expected], w.name)
    }
  })

  test('VersionId and ETag of an <Object> are accepted; Quiet is optional', () => {
    const body = `<Delete><Object><Key>k</Key><VersionId>v1</VersionId><ETag>"x"</ETag></Object></Delete>`
    assert.deepEqual(parseDeleteBody(parseXml(body)), { quiet: false, keys: ['k'], versionIds: ['v1'] })
  })
})

describe('CORS, lifecycle, website and CreateBucket bodies as each SDK writes them', () => {
  for (const w of WRITERS) {
    test(w.name, () => {
      const cors = write(w, [
        'CORSConfiguration',
        [
          [
            'CORSRule',
            [
              ['AllowedMethod', 'GET'],
              ['AllowedOrigin', 'https://example.com'],
              ['ID', AWKWARD],
              ['AllowedHeader', '*'],
              ['MaxAgeSeconds', '60'],
            ],
          ],
        ],
      ])
      assert.deepEqual(parseCorsConfiguration(parseXml(cors)), [
        {
          id: AWKWARD,
          maxAgeSeconds: 60,
          allowOrigins: ['https://example.com'],
          allowMethods: ['GET'],
          allowHeaders: ['*'],
          exposeHeaders: [],
        },
      ])

      const lifecycle = write(w, [
        'LifecycleConfiguration',
        [
          [
            'Rule',
            [
              ['Status', 'Enabled'],
              ['Expiration', [['Days', '3']]],
              ['Filter', [['Prefix', `logs/${AWKWARD}`]]],
              ['ID', AWKWARD],
            ],
          ],
        ],
      ])
      const [rule] = parseLifecycleConfiguration(parseXml(lifecycle))
      assert.equal(rule?.id, AWKWARD)
      assert.equal(rule?.filter.prefix, `logs/${AWKWARD}`)
      assert.equal(rule?.enabled, true)

      const website = write(w, [
        'WebsiteConfiguration',
        [
          ['IndexDocument', [['Suffix', 'index.html']]],
          ['ErrorDocument', [['Key', `errors/${AWKWARD}.html`]]],
        ],
      ])
      const site = parseWebsiteConfiguration(parseXml(website))
      assert.equal(site.errorDocument, `errors/${AWKWARD}.html`)
      assert.equal(site.indexDocument, 'index.html')

      const create = write(w, ['CreateBucketConfiguration', [['LocationConstraint', 'garage']]])
      assert.equal(parseCreateBucketBody(parseXml(create)), 'garage')
    })
  }
})

describe('the reader, form by form', () => {
  const accepted: Array<[name: string, xml: string | Uint8Array, expected: unknown]> = [
    ['decimal references', '<a><b>&#34;x&#39;&#60;&#38;</b></a>', { a: { b: `"x'<&` } }],
    ['hexadecimal references', '<a><b>&#x22;&#x9;&#xA;&#xD;&#x1F600;&#x0D;</b></a>', { a: { b: '"\t\n\r😀\r' } }],
    ['the five named entities', '<a><b>&lt;&gt;&amp;&quot;&apos;</b></a>', { a: { b: `<>&"'` } }],
    ['CDATA, kept verbatim', '<a><b><![CDATA[<x>&amp;"]]></b></a>', { a: { b: '<x>&amp;"' } }],
    ['CDATA next to text', '<a><b>x<![CDATA[&]]>y</b></a>', { a: { b: 'x&y' } }],
    ['the S3 namespace', `<a xmlns="${S3_XMLNS}"><b>1</b></a>`, { a: { b: '1' } }],
    ['a prefixed S3 namespace', `<s3:a xmlns:s3="${S3_XMLNS}"><s3:b>1</s3:b></s3:a>`, { a: { b: '1' } }],
    ['no namespace', '<a><b>1</b></a>', { a: { b: '1' } }],
    ['leading whitespace', '\n\t  <a><b>1</b></a>\n', { a: { b: '1' } }],
    ['a BOM and a declaration', '\uFEFF<?xml version="1.0" encoding="UTF-8"?><a/>', { a: '' }],
    ['a BOM as bytes', new Uint8Array([0xef, 0xbb, 0xbf, ...Buffer.from('<a>é</a>')]), { a: 'é' }],
    ["a declaration in single quotes (Python's)", "<?xml version='1.0' encoding='utf-8'?>\n<a/>", { a: '' }],
    ['a standalone declaration', '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><a/>', { a: '' }],
    ['comments and processing instructions', '<!-- c --><?pi x?><a><!-- c --><b>1<?pi?></b></a><!-- end -->', { a: { b: '1' } }],
    ['repeated elements become a list', '<a><b>1</b><c/><b>2</b></a>', { a: { b: ['1', '2'], c: '' } }],
    ['attributes are read and ignored', `<a x="1" y='&quot;'><b z="2">t</b></a>`, { a: { b: 't' } }],
    ['whitespace between elements is not text', '<a>\n  <b> 1 </b>\n</a>', { a: { b: ' 1 ' } }],
    ['CRLF in text becomes LF', '<a>x\r\ny\rz</a>', { a: 'x\ny\nz' }],
    ['names that are Object members', '<a><constructor>1</constructor><__proto__>2</__proto__></a>', null],
  ]
  for (const [name, xml, expected] of accepted) {
    test(`accepts ${name}`, () => {
      const doc = parseXml(xml)
      if (expected === null) {
        const a = doc.a as Record<string, unknown>
        assert.equal(a.constructor, '1')
        assert.equal(Object.getOwnPropertyDescriptor(a, '__proto__')?.value, '2')
        return
      }
      assert.deepEqual(JSON.parse(JSON.stringify(doc)), expected)
    })
  }

  const refused: Array<[name: string, xml: string | Uint8Array]> = [
    ['a DOCTYPE', '<?xml version="1.0"?><!DOCTYPE a><a/>'],
    ['an external entity (XXE)', '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>'],
    [
      'a billion laughs',
      `<!DOCTYPE l [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><l>&c;</l>`,
    ],
    ['a DOCTYPE inside the root', '<a><!DOCTYPE a></a>'],
    ['an undefined entity', '<a>&nbsp;</a>'],
    ['an uppercase hexadecimal reference (&#X22;)', '<a>&#X22;</a>'],
    ['a bare ampersand', '<a>x & y</a>'],
    ['an unterminated reference', '<a>&#34</a>'],
    ['a reference to NUL', '<a>&#0;</a>'],
    ['a reference to a surrogate', '<a>&#xD800;</a>'],
    ['a reference past Unicode', '<a>&#x110000;</a>'],
    ['a raw control character', '<a>\u0001</a>'],
    ['invalid UTF-8', new Uint8Array([0x3c, 0x61, 0x3e, 0xff, 0xfe, 0x3c, 0x2f, 0x61, 0x3e])],
    ['an overlong UTF-8 encoding', new Uint8Array([...Buffer.from('<a>'), 0xc0, 0xaf, ...Buffer.from('</a>')])],
    ['UTF-16', new Uint8Array(Buffer.from('\uFEFF<a/>', 'utf16le'))],
    ['another encoding declared', '<?xml version="1.0" encoding="ISO-8859-1"?><a/>'],
    ['a declaration after whitespace-free content', '<a/><?xml version="1.0"?>'],
    ['another namespace', '<a xmlns="http://example.com/"><b/></a>'],
    ['an undeclared prefix', '<x:a/>'],
    ['mismatched tags', '<a><b></a></b>'],
    ['an unclosed element', '<a><b></b>'],
    ['two roots', '<a/><b/>'],
    ['text outside the root', '<a/>x'],
    ['text mixed with elements', '<a>x<b/></a>'],
    ['an empty document', ''],
    ['a duplicate attribute', '<a x="1" x="2"/>'],
    ['an unquoted attribute', '<a x=1/>'],
    ['"]]>" in text', '<a>]]></a>'],
    ['"--" in a comment', '<a><!-- a -- b --></a>'],
    ['an unterminated CDATA', '<a><![CDATA[x</a>'],
    ['nesting 65 deep', `${'<a>'.repeat(65)}${'</a>'.repeat(65)}`],
  ]
  for (const [name, xml] of refused) {
    test(`refuses ${name} with MalformedXML`, () => {
      assert.equal(
        errorCode(() => parseXml(xml)),
        'MalformedXML',
      )
    })
  }

  test('a DOCTYPE is refused before any entity is expanded (a large one costs no time)', () => {
    const entities = Array.from({ length: 10 }, (_, i) => `<!ENTITY e${i + 1} "${`&e${i};`.repeat(10)}">`).join('')
    const xml = `<!DOCTYPE r [<!ENTITY e0 "lol">${entities}]><r>&e10;</r>`
    const t0 = performance.now()
    assert.equal(
      errorCode(() => parseXml(xml)),
      'MalformedXML',
    )
    assert.ok(performance.now() - t0 < 50, 'refused at once')
  })
})

describe('what each body accepts, as AWS does', () => {
  const rows: Array<[name: string, f: () => unknown, code: string]> = [
    [
      'an unknown element in <Part>',
      () =>
        parseCompleteBody(
          parseXml(
            '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag><Size>1</Size></Part></CompleteMultipartUpload>',
          ),
        ),
      'MalformedXML',
    ],
    [
      'an unknown element in <CompleteMultipartUpload>',
      () => parseCompleteBody(parseXml('<CompleteMultipartUpload><Parts/></CompleteMultipartUpload>')),
      'MalformedXML',
    ],
    ['another root for Complete', () => parseCompleteBody(parseXml('<Delete/>')), 'MalformedXML'],
    [
      'a Part without an ETag',
      () =>
        parseCompleteBody(parseXml('<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>')),
      'MalformedXML',
    ],
    [
      'a part number out of range',
      () =>
        parseCompleteBody(
          parseXml(
            '<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>',
          ),
        ),
      'InvalidArgument',
    ],
    [
      '10,001 parts',
      () =>
        parseCompleteBody(
          parseXml(
            `<CompleteMultipartUpload>${'<Part><PartNumber>1</PartNumber><ETag>x</ETag></Part>'.repeat(10_001)}</CompleteMultipartUpload>`,
          ),
        ),
      'MalformedXML',
    ],
    [
      'an unknown element in <Object>',
      () => parseDeleteBody(parseXml('<Delete><Object><Key>k</Key><Nope/></Object></Delete>')),
      'MalformedXML',
    ],
    [
      'an unknown element in <Delete>',
      () => parseDeleteBody(parseXml('<Delete><Object><Key>k</Key></Object><Nope/></Delete>')),
      'MalformedXML',
    ],
    ['no <Object>', () => parseDeleteBody(parseXml('<Delete><Quiet>true</Quiet></Delete>')), 'MalformedXML'],
    [
      'a <Quiet> that is not a boolean',
      () => parseDeleteBody(parseXml('<Delete><Object><Key>k</Key></Object><Quiet>yes</Quiet></Delete>')),
      'MalformedXML',
    ],
    [
      '1,001 keys',
      () => parseDeleteBody(parseXml(`<Delete>${'<Object><Key>k</Key></Object>'.repeat(1001)}</Delete>`)),
      'MalformedXML',
    ],
    [
      'an unknown element in <CORSRule>',
      () =>
        parseCorsConfiguration(
          parseXml(
            '<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin><Nope/></CORSRule></CORSConfiguration>',
          ),
        ),
      'MalformedXML',
    ],
    [
      'an unknown element in <WebsiteConfiguration>',
      () =>
        parseWebsiteConfiguration(
          parseXml('<WebsiteConfiguration><IndexDocument><Suffix>i</Suffix></IndexDocument><Nope/></WebsiteConfiguration>'),
        ),
      'MalformedXML',
    ],
    [
      'an unknown element in <CreateBucketConfiguration>',
      () => parseCreateBucketBody(parseXml('<CreateBucketConfiguration><Nope/></CreateBucketConfiguration>')),
      'MalformedXML',
    ],
  ]
  for (const [name, f, code] of rows) test(`${name} → ${code}`, () => assert.equal(errorCode(f), code))

  test('1,000 keys and 10,000 parts are fine', () => {
    assert.equal(parseDeleteBody(parseXml(`<Delete>${'<Object><Key>k</Key></Object>'.repeat(1000)}</Delete>`)).keys.length, 1000)
    const parts = Array.from(
      { length: 10_000 },
      (_, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>&#34;x&#34;</ETag></Part>`,
    )
    const listed = parseCompleteBody(parseXml(`<CompleteMultipartUpload>${parts.join('')}</CompleteMultipartUpload>`))
    assert.equal(listed.length, 10_000)
    assert.equal(listed[9999]?.etag, 'x')
  })
})
