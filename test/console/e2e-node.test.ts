/**
 * The console end to end on one real node, in headless Chromium: sign in (a wrong token refused),
 * create a bucket and a key, give the key access, upload a 12 MiB file (a multipart upload, with
 * progress) and download it byte-identical, delete it, and open every other page.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { startTestNode, type TestNode } from '../../lib/testing.ts'
import { ensureConsoleBuilt, launchBrowser } from '../helpers/browser.ts'
import { createKeyAndBucket, shot, uploadAndDownload, WAIT } from './_flows.ts'

const TOKEN = 'console-e2e-admin-token'

let node: TestNode
let browser: Browser
let page: Page

before(async () => {
  // The node looks for dist/ui when it starts.
  await ensureConsoleBuilt()
  node = await startTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: TOKEN } })
  browser = await launchBrowser()
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } })
  page = await context.newPage()
})

after(async () => {
  await browser?.close()
  await node?.close()
})

test('the console signs in with the admin token, and refuses a wrong one', async () => {
  await page.goto(`${node.adminEndpoint}/ui/`)
  await page.getByLabel('Admin token').fill('not-the-token')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('alert').filter({ hasText: 'Invalid authorization token' }).waitFor(WAIT)
  await shot(page, 'sign-in')
  await page.getByLabel('Admin token').fill(TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: 'Cluster', level: 1 }).waitFor(WAIT)
  // The token is in session storage, and in no URL the page visited.
  assert.equal(await page.evaluate("sessionStorage.getItem('garage-console-token')"), TOKEN)
  assert.ok(!page.url().includes(TOKEN))
  // The overview lists this node, up.
  await page.locator(`[data-testid=nodes] tr[data-node="${node.node.nodeId}"]`).getByText('up').waitFor(WAIT)
})

let keyId = ''

test('the console creates a bucket and a key, shows the secret once and gives the key access', async () => {
  const made = await createKeyAndBucket(page, 'console-key', 'console-photos')
  keyId = made.keyId
  // The server agrees.
  const info = await node.node.buckets.get(made.bucketId)
  assert.deepEqual(
    info?.keys.map((k) => [k.accessKeyId, k.permissions]),
    [[keyId, { read: true, write: true, owner: false }]],
  )
})

test('a 12 MiB file goes up as a multipart upload, comes down byte-identical, and is deleted', async () => {
  await uploadAndDownload(page)
  const row = page.getByTestId('objects').locator('tr[data-key="big.bin"]')
  page.once('dialog', (d) => void d.accept())
  await row.getByRole('button', { name: 'Delete big.bin' }).click()
  await row.waitFor({ state: 'detached', ...WAIT })
})

test('the other pages open: key, layout, admin tokens, workers and repairs, metrics', async () => {
  await page.goto(`${node.adminEndpoint}/ui/#/keys/${keyId}`)
  await page.getByRole('heading', { name: 'Key console-key' }).waitFor(WAIT)
  await page.getByRole('link', { name: 'Layout' }).click()
  await page.getByRole('heading', { name: 'History' }).waitFor(WAIT)
  await page.getByRole('link', { name: 'Admin tokens' }).click()
  await page.getByLabel('Name', { exact: true }).fill('ci-token')
  await page.getByRole('button', { name: 'Create token' }).click()
  await page.getByTestId('secret-value').waitFor(WAIT)
  await page.getByTestId('tokens').getByText('ci-token').waitFor(WAIT)
  await shot(page, 'tokens')
  await page.getByRole('link', { name: 'Workers' }).click()
  await page.getByRole('button', { name: 'Start scrub' }).click()
  await page.getByRole('status').filter({ hasText: 'Start scrub: launched on 1 node(s)' }).waitFor(WAIT)
  await page.getByTestId('workers').locator('tbody tr').first().waitFor(WAIT)
  await shot(page, 'workers')
  await page.getByRole('link', { name: 'Metrics' }).click()
  await page.getByTestId('metric-totals').waitFor(WAIT)
  await page.locator('.chart svg').first().waitFor(WAIT)
  await shot(page, 'metrics')
})

test('keyboard only on a phone-sized screen: sign in with Enter, open the menu, pages fit the width', async () => {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })
  const p = await phone.newPage()
  try {
    await p.goto(`${node.adminEndpoint}/ui/`)
    // The token field has the focus order's first place; Enter submits.
    await p.getByLabel('Admin token').waitFor(WAIT)
    await p.keyboard.press('Tab')
    assert.equal(await p.evaluate('document.activeElement?.id'), 'token')
    await p.keyboard.type(TOKEN)
    await p.keyboard.press('Enter')
    await p.getByRole('heading', { name: 'Cluster', level: 1 }).waitFor(WAIT)
    // The navigation folds behind a Menu button that says whether it is open.
    const menu = p.getByRole('button', { name: 'Menu' })
    assert.equal(await p.getByRole('link', { name: 'Buckets', exact: true }).isVisible(), false)
    await menu.focus()
    await p.keyboard.press('Enter')
    assert.equal(await menu.getAttribute('aria-expanded'), 'true')
    await p.getByRole('link', { name: 'Buckets', exact: true }).focus()
    await shot(p, 'phone-menu')
    await p.keyboard.press('Enter')
    await p.getByRole('heading', { name: 'Buckets', level: 1 }).waitFor(WAIT)
    await p.getByTestId('buckets').getByText('console-photos').waitFor(WAIT)
    for (const hash of ['#/overview', '#/buckets', '#/keys', '#/layout', '#/workers', '#/tokens', '#/metrics']) {
      await p.goto(`${node.adminEndpoint}/ui/${hash}`)
      await p.locator('main h1').waitFor(WAIT)
      // Wide tables scroll inside their own box; the page itself never scrolls sideways.
      const overflow = await p.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')
      assert.equal(overflow, 0, `${hash} is wider than the screen`)
    }
    await p.goto(`${node.adminEndpoint}/ui/#/overview`)
    await p.getByTestId('nodes').waitFor(WAIT)
    await shot(p, 'phone-overview')
  } finally {
    await phone.close()
  }
})
