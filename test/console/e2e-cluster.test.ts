/**
 * The console end to end on a real 3-node cluster (child processes), in headless Chromium: the
 * nodes appear, a layout is staged through the form, previewed and applied, then changed; a
 * bucket and key are made and a 12 MiB file goes up and comes down byte-identical; a killed node
 * is shown down.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { ADMIN_TOKEN, adminOk, type ClusterNodeProcess, FAST_ENV, startCluster } from '../helpers/cluster.ts'
import { ensureConsoleBuilt, launchBrowser } from '../helpers/browser.ts'
import { createKeyAndBucket, shot, signIn, uploadAndDownload, WAIT } from './_flows.ts'

let nodes: ClusterNodeProcess[] = []
let browser: Browser
let page: Page

before(async () => {
  // The nodes look for dist/ui when they start.
  await ensureConsoleBuilt()
  const [cluster, b] = await Promise.all([
    startCluster(3, { configLines: ['replication_factor = 3'], env: { ...FAST_ENV } }),
    launchBrowser(),
  ])
  nodes = cluster
  browser = b
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } })
  page = await context.newPage()
})

after(async () => {
  await browser?.close()
  await Promise.all(nodes.map((n) => n.proc.kill()))
})

const row = (id: string) => page.locator(`[data-testid=nodes] tr[data-node="${id}"]`)

test('the overview shows the three nodes up', async () => {
  await signIn(page, nodes[0]?.adminEndpoint as string, ADMIN_TOKEN)
  for (const n of nodes) {
    await row(n.id).getByText('up', { exact: true }).waitFor(WAIT)
  }
})

test('a layout staged in the form is previewed, applied, then changed (capacity and tags)', async () => {
  await page.getByRole('link', { name: 'Layout' }).click()
  await page.getByRole('heading', { name: 'Assign or change a role' }).waitFor(WAIT)
  for (const [i, n] of nodes.entries()) {
    await page.getByLabel('Node', { exact: true }).selectOption(n.id)
    await page.getByLabel('Zone', { exact: true }).fill(`zone-${i + 1}`)
    await page.getByLabel('Capacity', { exact: true }).fill(`${i + 1}G`)
    await page.getByRole('button', { name: 'Stage role' }).click()
    await page.getByTestId('staged').locator('li').nth(i).waitFor(WAIT)
  }
  await page.getByRole('button', { name: 'Preview' }).click()
  // Three replicas in three zones: every node gets all 256 partitions.
  await page.getByTestId('preview').waitFor(WAIT)
  assert.equal(await page.getByTestId('moved').textContent(), String(3 * 256))
  await shot(page, 'layout-preview')
  await page.getByRole('button', { name: 'Apply as version 1' }).click()
  await page.getByTestId('applied').waitFor(WAIT)
  await page.getByRole('heading', { name: 'Current layout (version 1)' }).waitFor(WAIT)
  const layout = await adminOk<{ version: number; roles: Array<{ id: string; zone: string; capacity: number }> }>(
    nodes[1] as ClusterNodeProcess,
    'GetClusterLayout',
  )
  assert.equal(layout.version, 1)
  assert.deepEqual(
    layout.roles.map((r) => [r.id, r.zone, r.capacity]).sort(),
    nodes.map((n, i) => [n.id, `zone-${i + 1}`, (i + 1) * 1024 ** 3]).sort(),
  )

  // Change the third node's capacity through its row's Change button.
  const third = nodes[2] as ClusterNodeProcess
  await page.getByRole('button', { name: `Change role of ${third.id.slice(0, 16)}` }).click()
  await page.getByLabel('Capacity', { exact: true }).fill('5G')
  await page.getByLabel('Tags').fill('ssd, rack-7')
  await page.getByRole('button', { name: 'Stage role' }).click()
  await page.getByTestId('staged').locator('li').first().waitFor(WAIT)
  await page.getByRole('button', { name: 'Apply as version 2' }).click()
  await page.getByRole('heading', { name: 'Current layout (version 2)' }).waitFor(WAIT)
  await shot(page, 'layout')
  const v2 = await adminOk<{ version: number; roles: Array<{ id: string; capacity: number; tags: string[] }> }>(
    third,
    'GetClusterLayout',
  )
  assert.equal(v2.version, 2)
  const role = v2.roles.find((r) => r.id === third.id)
  assert.equal(role?.capacity, 5 * 1024 ** 3)
  assert.deepEqual(role?.tags, ['ssd', 'rack-7'])
})

test('a bucket and a key made in the console carry a 12 MiB file across the cluster', async () => {
  await createKeyAndBucket(page, 'cluster-key', 'cluster-bucket')
  await uploadAndDownload(page)
})

test('a killed node is shown down', async () => {
  const victim = nodes[2] as ClusterNodeProcess
  await victim.proc.kill()
  await page.getByRole('link', { name: 'Cluster', exact: true }).click()
  await row(victim.id).getByText('down', { exact: true }).waitFor(WAIT)
  await row((nodes[0] as ClusterNodeProcess).id)
    .getByText('up', { exact: true })
    .waitFor(WAIT)
  await page.getByTestId('health').getByText('degraded').waitFor(WAIT)
  await shot(page, 'overview')
})
