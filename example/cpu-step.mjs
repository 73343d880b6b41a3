// A CPU-heavy pipeline step (think: compiling, or a model inference): spins for `ms` on a thread.
export default function cpuStep(ms) {
  const end = Date.now() + ms
  let n = 0
  while (Date.now() < end) n++
  return n
}
