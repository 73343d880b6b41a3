// The request listener every server in bench/http.ts serves (forkyard loads it as its app; the
// bare-cluster and single-process baselines import it): the smallest response, so the bench
// measures the server machinery around the app, not the app.
export default function hello(_req, res) {
  res.setHeader('Content-Type', 'text/plain')
  res.end('hello\n')
}
