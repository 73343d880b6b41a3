/**
 * The example app in a real browser (Debian's chromium driven by playwright-core) against the
 * whole stack started natively: submit the form, watch every step complete live; kill -9 the push
 * process mid-pipeline and see the page say so, reconnect, catch up, and show every step exactly
 * once. Saves docs/screenshot.png for the README.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { chromium } from 'playwright-core'
import { startStackRun } from '../helpers/stack.js'
import { root, until } from '../helpers/server.js'

const CHROMIUM = '/usr/bin/chromium'

test('the example page: a pipeline runs live; the push process dies mid-pipeline and the page recovers with every step exactly once', async (t) => {
  assert.ok(existsSync(CHROMIUM), `expected Debian's chromium at ${CHROMIUM} (apt-get install -y chromium)`)
  const s = await startStackRun(t, { FORKYARD_APP: join(root, 'example/app.mjs'), FORKYARD_PUSH_HEARTBEAT_STALE: '3s' })
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  t.after(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } })
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  await page.goto(s.url('/'))
  await page.waitForSelector('#connection[data-state="open"]', { timeout: 15_000 })
  await page.waitForSelector('#health .ok', { timeout: 10_000 })

  // A pipeline with a CPU-heavy (offloaded) step: every step completes live.
  await page.fill('input[name="name"]', 'quick build')
  await page.fill('textarea[name="steps"]', 'checkout:sleep:300\ncompile:cpu:800\ntest:sleep:400')
  await page.click('button[type="submit"]')
  await page.waitForSelector('.pipeline[data-state="done"]', { timeout: 30_000 })
  assert.deepEqual(await page.$$eval('.pipeline[data-state="done"] .step', (els) => els.map((e) => e.getAttribute('data-state'))), ['done', 'done', 'done'])

  // A second tab, on a phone-sized screen: no sideways scroll, and it follows a pipeline started in
  // the first tab until it is done (the public "pipelines" channel).
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 } })
  phone.on('pageerror', (err) => errors.push(`phone: ${err.message}`))
  await phone.goto(s.url('/'))
  await phone.waitForSelector('#connection[data-state="open"]', { timeout: 15_000 })
  assert.equal(await phone.evaluate('document.documentElement.scrollWidth <= window.innerWidth'), true, 'no sideways scroll at 390 px')
  await page.fill('input[name="name"]', 'from the first tab')
  await page.fill('textarea[name="steps"]', 'lint:sleep:500\nunit:sleep:500')
  await page.click('button[type="submit"]')
  await phone.locator('.pipeline', { hasText: 'from the first tab' }).waitFor({ timeout: 10_000 })
  await phone.locator('.pipeline[data-state="done"]', { hasText: 'from the first tab' }).waitFor({ timeout: 20_000 })
  assert.equal(await phone.evaluate('document.documentElement.scrollWidth <= window.innerWidth'), true, 'still no sideways scroll with pipelines listed')
  await phone.screenshot({ path: join(root, 'docs/screenshot-phone.png'), fullPage: true })
  await phone.close()

  // The app's HTTP edges: publishing needs what subscribing needs; a large body gets the app's 413.
  const notify = (body: unknown, headers: Record<string, string> = {}): Promise<Response> => fetch(s.url('/api/notify'), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  assert.equal((await notify({ channel: 'news', message: 'hi' })).status, 202)
  assert.equal((await notify({ channel: '$sys:heartbeat', message: 'forged' })).status, 403)
  assert.equal((await notify({ channel: 'private:pipeline:0123', message: 'forged' })).status, 403)
  const big = await fetch(s.url('/api/notify'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ channel: 'news', message: 'x'.repeat(900 * 1024) }) })
  assert.equal(big.status, 413, 'the app answers 413, not a 502 from a cut connection')
  assert.equal((await fetch(s.url('/static/favicon.svg'))).status, 200)

  // Bad input: a clear message, nothing queued.
  await page.fill('textarea[name="steps"]', 'deploy:gpu:100')
  await page.click('button[type="submit"]')
  await page.waitForFunction("(document.querySelector('#form-error')?.textContent ?? '').includes('kind')", undefined, { timeout: 5000 })

  // A longer pipeline; the push process is killed -9 while it runs.
  await page.fill('input[name="name"]', 'release')
  await page.fill('textarea[name="steps"]', 'fetch:sleep:1500\nbuild:cpu:1500\ntest:sleep:1500\nship:sleep:1500')
  await page.click('button[type="submit"]')
  const release = page.locator('.pipeline', { hasText: 'release' })
  await release.locator('.step[data-state="done"]').first().waitFor({ timeout: 15_000 })
  const pushPid = s.programPid('push')
  assert.ok(pushPid !== null)
  // Every state and text the outage banner shows, from here on.
  await page.evaluate(`(() => {
    const el = document.querySelector('#outage')
    window.__banner = []
    new MutationObserver(() => window.__banner.push([el.dataset.state, el.textContent])).observe(el, { attributes: true, childList: true, characterData: true, subtree: true })
  })()`)
  process.kill(pushPid, 'SIGKILL')
  await page.waitForSelector('#connection:not([data-state="open"])', { timeout: 10_000 })
  const banner = await page.textContent('#connection')
  assert.match(banner ?? '', /reconnecting|connection lost/)
  await page.waitForSelector('#connection[data-state="open"]', { timeout: 30_000 })
  await release.locator('xpath=.').and(page.locator('[data-state="done"]')).waitFor({ timeout: 30_000 })
  const steps = await release.locator('.step').evaluateAll((els) => els.map((e) => [e.textContent?.split(' ')[0], e.getAttribute('data-state')]))
  assert.deepEqual(steps, [['fetch', 'done'], ['build', 'done'], ['test', 'done'], ['ship', 'done']], 'every step shown exactly once, done')
  await until('health panel green again', async () => (await page.$$('#health .bad')).length === 0, 15_000)
  // The outage banner: shown once, in words, steady (no flip-flop between messages), then cleared.
  await page.waitForSelector('#outage[data-state="recovered"]', { timeout: 15_000 })
  const seen = (await page.evaluate('window.__banner')) as [string, string][]
  const states = seen.map(([state]) => state).filter((st, i, all) => i === 0 || all[i - 1] !== st)
  assert.deepEqual(states, ['outage', 'recovered'], JSON.stringify(seen))
  const headlines = new Set(seen.filter(([st]) => st === 'outage').map(([, text]) => text))
  assert.ok(headlines.size <= 2, `at most one change of words during the outage: ${JSON.stringify([...headlines])}`)
  for (const h of headlines) assert.doesNotMatch(h, /ECONNREFUSED|unreachable at|undefined/, h)
  await page.screenshot({ path: join(root, 'docs/screenshot.png'), fullPage: true })
  assert.deepEqual(errors, [], 'no page errors')
})
