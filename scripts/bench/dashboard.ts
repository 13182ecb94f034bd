import type { Page } from "playwright-core"
import { liveSource } from "../../plugin/dashboard/live.js"
import { startDashboard } from "../../plugin/dashboard/server.js"
import { launchChromium } from "../harness/chromium.js"
import { detachedRuntime, sampleTask } from "../harness/detached-runtime.js"
import { percentile, type Row } from "./util.js"

/**
 * The dashboard in a real browser (Debian's chromium): an NSO event written through
 * `Runtime.write` until its row is on the page (the page's own clock, a MutationObserver), and
 * a page opened on 1,000 tasks until every row is drawn.
 */

/** Epoch ms on the page when `selector` first matches (a MutationObserver installed now). In-page code is a string: no DOM types here. */
async function watchFor(page: Page, selector: string): Promise<void> {
  await page.evaluate(`(() => {
    const sel = ${JSON.stringify(selector)}
    window.__seen = new Promise((resolve) => {
      const check = () => document.querySelector(sel) && (obs.disconnect(), resolve(performance.timeOrigin + performance.now()))
      const obs = new MutationObserver(check)
      obs.observe(document.body, { subtree: true, childList: true })
      check()
    })
  })()`)
}

export async function dashboardBench(opts: { events?: number; tasks?: number } = {}): Promise<Row[]> {
  const events = opts.events ?? 40
  const many = opts.tasks ?? 1_000
  const browser = await launchChromium()
  const rows: Row[] = []
  try {
    // 1. Event → visible.
    {
      const { rt, close } = await detachedRuntime()
      const source = liveSource(rt)
      const dash = await startDashboard(source, { port: 0 })
      try {
        const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
        await page.goto(dash.url)
        await page.locator('[data-live="live"]').waitFor({ timeout: 10_000 })
        const lat: number[] = []
        for (let i = 0; i < events; i++) {
          const t = sampleTask()
          await watchFor(page, `[data-task="${t.id}"]`)
          const t0 = performance.timeOrigin + performance.now()
          void rt.write({ type: "task.created", task: t })
          const seen = (await page.evaluate("window.__seen")) as number
          lat.push(seen - t0)
        }
        rows.push({ section: "dashboard", figure: "NSO event → visible on the page, p50", value: `${percentile(lat, 50).toFixed(1)} ms`, target: "≤ 100 ms", note: `p90 ${percentile(lat, 90).toFixed(1)} ms, ${events} task.created events through Runtime.write, real chromium` })
      } finally {
        await dash.close()
        source.dispose()
        await close()
      }
    }
    // 2. A page on 1,000 tasks.
    {
      const { rt, close } = await detachedRuntime()
      for (let i = 0; i < many; i++) await rt.write({ type: "task.created", task: sampleTask({ parentTaskId: undefined }) })
      const source = liveSource(rt)
      const dash = await startDashboard(source, { port: 0 })
      try {
        const times: number[] = []
        for (let round = 0; round < 3; round++) {
          const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
          // Installed before the page's scripts: the time (since navigation start) the last row appears.
          await page.addInitScript(`
            window.__drawn = new Promise((resolve) => {
              const check = () => document.querySelectorAll("[data-lane=running] [data-task]").length >= ${many} && (obs.disconnect(), resolve(performance.now()))
              const obs = new MutationObserver(check)
              obs.observe(document, { subtree: true, childList: true })
            })`)
          await page.goto(dash.url)
          times.push((await page.evaluate("window.__drawn")) as number)
          await page.close()
        }
        rows.push({ section: "dashboard", figure: `page with ${many.toLocaleString("en")} running tasks: navigation → every row drawn`, value: `${percentile(times, 50).toFixed(0)} ms`, target: "≤ 1 s", note: `median of 3 loads (${times.map((t) => t.toFixed(0)).join(", ")} ms)` })
      } finally {
        await dash.close()
        source.dispose()
        await close()
      }
    }
  } finally {
    await browser.close()
  }
  return rows
}
