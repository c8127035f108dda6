/**
 * The console end to end on one real node, in headless Chromium: sign in, create a bucket and a
 * key, give the key access, upload a 12 MiB file (a multipart upload, with progress) and download
 * it byte-identical, look at its metadata, delete it, and open every page.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { startTestNode, type TestNode } from '../../lib/testing.ts'
import { launchBrowser, SCREENSHOT_DIR } from '../helpers/browser.ts'

const TOKEN = 'console-e2e-admin-token'
/** A bound on each wait of the browser (not a timing assertion: the test fails only if nothing happens). */
const WAIT = { timeout: 30_000 }

let node: TestNode
let browser: Browser
let page: Page

before(async () => {
  node = await startTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: TOKEN } })
  browser = await launchBrowser()
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } })
  page = await context.newPage()
})

after(async () => {
  await browser?.close()
  await node?.close()
})

const shot = async (name: string): Promise<void> => {
  if (SCREENSHOT_DIR !== undefined) await page.screenshot({ path: `${SCREENSHOT_DIR}${name}.png`, fullPage: true })
}

test('the console signs in with the admin token, and refuses a wrong one', async () => {
  const url = `${node.adminEndpoint}/ui/`
  await page.goto(url)
  await page.getByLabel('Admin token').fill('not-the-token')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('alert').filter({ hasText: 'Invalid authorization token' }).waitFor(WAIT)
  await shot('sign-in')
  await page.getByLabel('Admin token').fill(TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: 'Cluster', level: 1 }).waitFor(WAIT)
  // The token is in session storage, and in no URL the page visited.
  assert.equal(await page.evaluate("sessionStorage.getItem('garage-console-token')"), TOKEN)
  assert.ok(!page.url().includes(TOKEN))
  // The overview lists this node, up.
  await page.locator(`[data-testid=nodes] tr[data-node="${node.node.nodeId}"]`).getByText('up').waitFor(WAIT)
  await shot('overview')
})

let keyId = ''
let bucketId = ''

test('the console creates a bucket and a key, shows the secret once and gives the key access', async () => {
  await page.getByRole('link', { name: 'Keys' }).click()
  await page.getByLabel('Name', { exact: true }).fill('console-key')
  await page.getByRole('button', { name: 'Create key' }).click()
  keyId = (await page.getByTestId('created-key-id').textContent(WAIT)) ?? ''
  const secret = (await page.getByTestId('secret-value').textContent(WAIT)) ?? ''
  assert.match(keyId, /^GK[0-9a-f]{24}$/)
  assert.match(secret, /^[0-9a-f]{64}$/)
  await shot('keys')
  await page.getByRole('button', { name: 'I have saved it' }).click()
  assert.equal(await page.getByTestId('secret-value').count(), 0)

  await page.getByRole('link', { name: 'Buckets' }).click()
  await page.getByLabel('Name (global alias)').fill('console-photos')
  await page.getByRole('button', { name: 'Create bucket' }).click()
  await page.getByRole('heading', { name: 'Bucket console-photos' }).waitFor(WAIT)
  bucketId = decodeURIComponent(page.url().split('#/buckets/')[1] ?? '')
  assert.match(bucketId, /^[0-9a-f]{64}$/)
  await page.getByLabel('Give a key read and write access').selectOption(keyId)
  await page.getByRole('button', { name: 'Allow' }).click()
  const row = page.getByTestId('bucket-keys').locator('tr', { hasText: keyId })
  await row.waitFor(WAIT)
  assert.equal(await row.getByLabel('read').isChecked(), true)
  assert.equal(await row.getByLabel('write').isChecked(), true)
  assert.equal(await row.getByLabel('owner').isChecked(), false)
  // The server agrees.
  const info = await node.node.buckets.get(bucketId)
  assert.ok(info !== undefined)
  await shot('bucket')
})

test('a 12 MiB file goes up as a multipart upload and comes down byte-identical', async () => {
  const data = randomBytes(12 * 1024 * 1024)
  await page.getByRole('link', { name: 'Browse objects' }).click()
  await page.getByLabel('Act as key').waitFor(WAIT)
  // From a file on disk: handing Chromium a 12 MiB buffer through the protocol is slow.
  const dir = await mkdtemp(join(tmpdir(), 'console-e2e-'))
  after(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'big.bin'), data)
  await page.getByLabel(/Files to upload/).setInputFiles(join(dir, 'big.bin'))
  await page.getByRole('button', { name: 'Upload', exact: true }).click()
  await page.locator('.uploads li[data-state=done]').waitFor(WAIT)
  assert.equal(await page.locator('.uploads li[data-state=failed]').count(), 0)
  const row = page.getByTestId('objects').locator('tr[data-key="big.bin"]')
  await row.waitFor(WAIT)
  assert.match((await row.textContent()) ?? '', /12\.0 MiB/)

  // Three parts (5 + 5 + 2 MiB): the ETag of a multipart upload ends in -3.
  await row.getByRole('button', { name: 'Details of big.bin' }).click()
  const meta = page.getByTestId('object-metadata')
  await meta.getByText('etag').waitFor(WAIT)
  assert.match((await meta.textContent()) ?? '', /-3"/)
  await shot('objects')

  const [download] = await Promise.all([
    page.waitForEvent('download', WAIT),
    row.getByRole('button', { name: 'Download big.bin' }).click(),
  ])
  assert.equal(download.suggestedFilename(), 'big.bin')
  const got = await readFile(await download.path())
  assert.equal(got.length, data.length)
  assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(data).digest('hex'))

  page.once('dialog', (d) => void d.accept())
  await row.getByRole('button', { name: 'Delete big.bin' }).click()
  await row.waitFor({ state: 'detached', ...WAIT })
})

test('the other pages open: layout, key, admin tokens, workers, metrics', async () => {
  await page.goto(`${node.adminEndpoint}/ui/#/keys/${keyId}`)
  await page.getByRole('heading', { name: 'Key console-key' }).waitFor(WAIT)
  await page.getByRole('link', { name: 'Layout' }).click()
  await page.getByRole('heading', { name: 'Cluster layout' }).waitFor(WAIT)
  await page.getByRole('heading', { name: 'History' }).waitFor(WAIT)
  await shot('layout')
  await page.getByRole('link', { name: 'Admin tokens' }).click()
  await page.getByLabel('Name', { exact: true }).fill('ci-token')
  await page.getByRole('button', { name: 'Create token' }).click()
  await page.getByTestId('secret-value').waitFor(WAIT)
  await page.getByTestId('tokens').getByText('ci-token').waitFor(WAIT)
  await shot('tokens')
  await page.getByRole('link', { name: 'Workers' }).click()
  await page.getByRole('button', { name: 'Start scrub' }).click()
  await page.getByRole('status').filter({ hasText: 'Start scrub: launched on 1 node(s)' }).waitFor(WAIT)
  await page.getByTestId('workers').locator('tbody tr').first().waitFor(WAIT)
  await shot('workers')
  await page.getByRole('link', { name: 'Metrics' }).click()
  await page.getByTestId('metric-totals').waitFor(WAIT)
  await page.locator('.chart svg').first().waitFor(WAIT)
  await shot('metrics')
})
