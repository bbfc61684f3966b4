"""The gunicorn peer of bench/http_bench.py: a WSGI app doing what `POST /v1/execute` with the
`echo` command does — parse the JSON body, answer {"ok": true, "result": args} as JSON.

Run: /usr/bin/python3 -m gunicorn -w 2 -k sync -b 127.0.0.1:PORT --chdir bench wsgi_echo:app
"""

import json


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    try:
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        reply = {"ok": True, "result": body.get("args", {}), "worker": "gunicorn", "attempts": 1}
        status = "200 OK"
    except (ValueError, AttributeError) as exc:
        reply = {"ok": False, "error": {"category": "invalid_request", "message": str(exc)}}
        status = "400 Bad Request"
    data = json.dumps(reply).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data)))])
    return [data]
