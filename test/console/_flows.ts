/** What the console's end-to-end tests do in the browser, shared by the one-node and cluster runs. */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { SCREENSHOT_DIR } from '../helpers/browser.ts'

/** A bound on each wait of the browser (not a timing assertion: a test fails only if nothing happens). */
export const WAIT = { timeout: 30_000 }

export async function shot(page: Page, name: string): Promise<void> {
  if (SCREENSHOT_DIR !== undefined) await page.screenshot({ path: `${SCREENSHOT_DIR}${name}.png`, fullPage: true })
}

/** Signs in at `<admin>/ui/` and waits for the overview. */
export async function signIn(page: Page, adminEndpoint: string, token: string): Promise<void> {
  await page.goto(`${adminEndpoint}/ui/`)
  await page.getByLabel('Admin token').fill(token)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: 'Cluster', level: 1 }).waitFor(WAIT)
}

/** Creates a key (returns its id, checking the secret is shown once) and a bucket the key may read and write. */
export async function createKeyAndBucket(
  page: Page,
  keyName: string,
  bucket: string,
): Promise<{ keyId: string; bucketId: string }> {
  await page.getByRole('link', { name: 'Keys', exact: true }).click()
  await page.getByLabel('Name', { exact: true }).fill(keyName)
  await page.getByRole('button', { name: 'Create key' }).click()
  const keyId = (await page.getByTestId('created-key-id').textContent(WAIT)) ?? ''
  const secret = (await page.getByTestId('secret-value').textContent(WAIT)) ?? ''
  assert.match(keyId, /^GK[0-9a-f]{24}$/)
  assert.match(secret, /^[0-9a-f]{64}$/)
  await shot(page, 'keys')
  await page.getByRole('button', { name: 'I have saved it' }).click()
  assert.equal(await page.getByTestId('secret-value').count(), 0, 'the secret is gone once dismissed')

  await page.getByRole('link', { name: 'Buckets', exact: true }).click()
  await page.getByLabel('Name (global alias)').fill(bucket)
  await page.getByRole('button', { name: 'Create bucket' }).click()
  await page.getByRole('heading', { name: `Bucket ${bucket}` }).waitFor(WAIT)
  const bucketId = decodeURIComponent(page.url().split('#/buckets/')[1] ?? '')
  assert.match(bucketId, /^[0-9a-f]{64}$/)
  await page.getByLabel('Give a key read and write access').selectOption(keyId)
  await page.getByRole('button', { name: 'Allow' }).click()
  const row = page.getByTestId('bucket-keys').locator('tr', { hasText: keyId })
  await row.waitFor(WAIT)
  assert.equal(await row.getByLabel('read').isChecked(), true)
  assert.equal(await row.getByLabel('write').isChecked(), true)
  assert.equal(await row.getByLabel('owner').isChecked(), false)
  await shot(page, 'bucket')
  return { keyId, bucketId }
}

/**
 * From a bucket's page: uploads a 12 MiB file through the object browser (a multipart upload of
 * 5 + 5 + 2 MiB), checks its size and multipart ETag, downloads it and compares every byte.
 * Returns the object's row for further steps.
 */
export async function uploadAndDownload(page: Page): Promise<void> {
  const data = randomBytes(12 * 1024 * 1024)
  await page.getByRole('link', { name: 'Browse objects' }).click()
  await page.getByLabel('Act as key').waitFor(WAIT)
  // From a file on disk: handing Chromium a 12 MiB buffer through the protocol is slow.
  const dir = await mkdtemp(join(tmpdir(), 'console-e2e-'))
  try {
    await writeFile(join(dir, 'big.bin'), data)
    await page.getByLabel(/Files to upload/).setInputFiles(join(dir, 'big.bin'))
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    await page.locator('.uploads li[data-state=done], .uploads li[data-state=failed]').waitFor(WAIT)
    assert.equal(
      await page.locator('.uploads li[data-state=failed]').count(),
      0,
      (await page.locator('.uploads').textContent()) ?? '',
    )
    const row = page.getByTestId('objects').locator('tr[data-key="big.bin"]')
    await row.waitFor(WAIT)
    assert.match((await row.textContent()) ?? '', /12\.0 MiB/)

    // Three parts: the ETag of a multipart upload ends in -3.
    await row.getByRole('button', { name: 'Details of big.bin' }).click()
    const meta = page.getByTestId('object-metadata')
    await meta.getByText('etag').waitFor(WAIT)
    assert.match((await meta.textContent()) ?? '', /-3"/)
    await shot(page, 'objects')

    const [download] = await Promise.all([
      page.waitForEvent('download', WAIT),
      row.getByRole('button', { name: 'Download big.bin' }).click(),
    ])
    assert.equal(download.suggestedFilename(), 'big.bin')
    const got = await readFile(await download.path())
    assert.equal(got.length, data.length)
    assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(data).digest('hex'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
