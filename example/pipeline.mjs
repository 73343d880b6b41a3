// The background task that runs a pipeline: step by step, off the request path, in the jobs
// process. A "cpu" step is CPU-heavy work offloaded to a worker thread, so nothing blocks.
import { offload } from 'forkyard'

export async function runPipeline(payload, ctx) {
  const states = payload.steps.map(() => 'pending')
  const report = (i, state) => {
    states[i] = state
    return ctx.progress({ step: i, name: payload.steps[i].name, state, steps: [...states] })
  }
  for (let i = 0; i < payload.steps.length; i++) {
    const step = payload.steps[i]
    await report(i, 'running')
    if (step.kind === 'cpu') await offload(new URL('./cpu-step.mjs', import.meta.url), step.ms)
    else await new Promise((resolve) => setTimeout(resolve, step.ms))
    await report(i, 'done')
    ctx.log.info({ step: step.name, index: i }, 'pipeline step done')
  }
  return { steps: payload.steps.length }
}
