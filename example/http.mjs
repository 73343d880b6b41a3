// Small HTTP helpers of the example app: JSON answers, bounded bodies, input validation.

export function json(res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' })
  res.end(text)
}

/**
 * The body as text, at most `max` bytes; a larger one is read to its end and dropped, then refused
 * with 413. Destroying the request instead would cut the connection before the answer, and nginx
 * would turn that into a 502 (nginx's own client_max_body_size bounds what is read here).
 */
export function readBody(req, max) {
  return new Promise((resolve, reject) => {
    let size = 0
    const chunks = []
    req.on('data', (c) => {
      size += c.length
      if (size <= max) chunks.push(c)
    })
    req.on('end', () => {
      if (size > max) reject(Object.assign(new Error(`expected a body of at most ${max} bytes, got ${size}`), { status: 413 }))
      else resolve(Buffer.concat(chunks).toString('utf8'))
    })
    req.on('error', reject)
  })
}

const KINDS = ['sleep', 'cpu']

function bad(message) {
  return Object.assign(new Error(message), { status: 400 })
}

/** {"name": 1-80 chars, "steps": 1-10 of {"name": 1-40 chars, "kind": "sleep"|"cpu", "ms": 0-20000}} */
export function validatePipeline(text) {
  let input
  try {
    input = JSON.parse(text)
  } catch {
    throw bad('expected a JSON body like {"name":"build","steps":[{"name":"lint","kind":"sleep","ms":500}]}')
  }
  if (typeof input?.name !== 'string' || input.name.trim() === '' || input.name.length > 80) throw bad(`expected "name" to be a string of 1-80 characters, got ${JSON.stringify(input?.name)}`)
  if (!Array.isArray(input.steps) || input.steps.length < 1 || input.steps.length > 10) throw bad(`expected "steps" to be an array of 1-10 steps, got ${JSON.stringify(input.steps)?.slice(0, 100)}`)
  const steps = input.steps.map((s, i) => {
    if (typeof s?.name !== 'string' || s.name.trim() === '' || s.name.length > 40) throw bad(`expected steps[${i}].name to be a string of 1-40 characters, got ${JSON.stringify(s?.name)}`)
    if (!KINDS.includes(s.kind)) throw bad(`expected steps[${i}].kind to be one of ${KINDS.join(', ')}, got ${JSON.stringify(s.kind)}`)
    if (!Number.isInteger(s.ms) || s.ms < 0 || s.ms > 20_000) throw bad(`expected steps[${i}].ms to be a whole number from 0 to 20000, got ${JSON.stringify(s.ms)}`)
    return { name: s.name.trim(), kind: s.kind, ms: s.ms }
  })
  return { name: input.name.trim(), steps }
}
