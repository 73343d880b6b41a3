// The background task that runs a pipeline: step by step, off the request path, in the jobs
// process. A "cpu" step is CPU-heavy work offloaded to a worker thread, so nothing blocks.
import { offload, publish } from 'forkyard'

/** The pipeline's state on the public "pipelines" channel every page follows (never holds the task up). */
function announce(ctx, payload, state) {
  publish('pipelines', { id: ctx.id, name: payload.name, state, attempt: ctx.attempt }).catch(() => {})
}

export async function runPipeline(payload, ctx) {
  announce(ctx, payload, 'running')
  try {
    const result = await runSteps(payload, ctx)
    announce(ctx, payload, 'done')
    return result
  } catch (err) {
    announce(ctx, payload, 'failed')
    throw err
  }
}

async function runSteps(payload, ctx) {
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
