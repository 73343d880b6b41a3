-- wrk script: keep-alive POSTs with a small JSON body (nginx never retries a POST, so a request
-- dropped by the server shows as an error instead of being hidden by a retry).
wrk.method = "POST"
wrk.body = '{"bench":true}'
wrk.headers["Content-Type"] = "application/json"
