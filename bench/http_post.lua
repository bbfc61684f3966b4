-- wrk script: POST the same JSON echo request on every call (bench/http_bench.py).
-- The body is the one both servers answer: bridgepool's /v1/execute and bench/wsgi_echo.py.
wrk.method = "POST"
wrk.body = '{"command":"echo","args":{"x":1,"s":"hello"}}'
wrk.headers["Content-Type"] = "application/json"
