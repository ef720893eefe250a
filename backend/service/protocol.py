"""uvicorn's HTTP/1.1 protocol (h11) answering the requests it rejects before the app sees them -
a malformed request line or header, a bad Content-Length (-1, abc, 10^23), bytes left over past a
request's body - with the API's JSON error instead of uvicorn's plain-text 400."""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MALFORMED = {
    "error": {
        "code": "bad_request",
        "message": (
            "the request is not valid HTTP/1.1 (request line, a header or Content-Length); the connection is closed"
        ),
    }
}


class JsonErrorH11Protocol(H11Protocol):
    """`uvicorn.run(..., http=JsonErrorH11Protocol)`: as uvicorn's h11 protocol, but its 400 answer
    for unparseable requests is `{"error": {"code", "message"}}` like every other error."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps(MALFORMED).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()
