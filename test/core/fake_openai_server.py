"""A small OpenAI-compatible chat-completions server for tests, bound to 127.0.0.1 only.

It answers ``POST /v1/chat/completions`` with a ``chat.completion`` whose text is derived from
the request (it names the track id and decision found in the JSON user message), so a test can
prove that the facts arrived. Switches, settable before or between requests:

* ``delay_s``: sleep this long before answering (timeouts);
* ``status``: answer with this HTTP status and an OpenAI-style error body (e.g. 500) whose
  message is ``error_message``;
* ``malformed``: answer 200 with a body that is not JSON;
* ``empty``: answer 200 with an empty message content;
* ``reply``: answer this canned text instead of the derived one (e.g. one that invents a number,
  to check that the explainer rejects it).

``port`` (default 0: any free one) lets a test bring a stopped server back at the same URL.

Usage::

    with FakeOpenAIServer() as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="test-key")
        ...
        assert srv.request_count == 1
"""
from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"


def _reply_text(body: dict[str, Any]) -> str:
    """The answer text: names the track id and decision of the JSON facts in the last user message."""
    user = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
    content = user[-1] if user else ""
    try:
        facts = json.loads(content)
    except (TypeError, json.JSONDecodeError):
        return f"fake answer to: {str(content)[:60]}"
    return f"Track {facts.get('track_id')} was {facts.get('decision')} (fake model {body.get('model')})."


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: FakeOpenAIServer, port: int) -> None:
        super().__init__((HOST, port), _Handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out hang up mid-answer; that is expected here, not an error to print."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """Quiet: tests read the counters, not a log."""

    def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        owner = self.server.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(HTTPStatus.NOT_FOUND, b'{"error": {"message": "not found"}}')
            return
        body = json.loads(raw)
        owner.record(body, self.headers.get("Authorization", ""))
        if owner.delay_s > 0 and owner.stopping.wait(owner.delay_s):
            return
        if owner.status != HTTPStatus.OK:
            error = {"error": {"message": owner.error_message, "type": "server_error", "code": owner.status}}
            self._send(owner.status, json.dumps(error).encode())
            return
        if owner.malformed:
            self._send(HTTPStatus.OK, b'{"id": "chatcmpl-fake", "choices": [')
            return
        text = "" if owner.empty else owner.reply if owner.reply is not None else _reply_text(body)
        completion = {
            "id": f"chatcmpl-fake-{owner.request_count}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"  {text}\n"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        self._send(HTTPStatus.OK, json.dumps(completion).encode())


class FakeOpenAIServer:
    """Context manager running the fake server on an ephemeral 127.0.0.1 port in a thread.

    Attributes read by tests: ``base_url`` (``http://127.0.0.1:PORT/v1``), ``request_count``,
    ``requests`` (parsed JSON bodies, in arrival order), ``authorizations`` (Authorization headers).
    """

    def __init__(self, delay_s: float = 0.0, status: int = HTTPStatus.OK, malformed: bool = False, empty: bool = False,
                 port: int = 0, error_message: str = "fake failure", reply: str | None = None):
        self.port = port
        self.reply = reply
        self.error_message = error_message
        self.delay_s = delay_s
        self.status = int(status)
        self.malformed = malformed
        self.empty = empty
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def record(self, body: dict[str, Any], authorization: str) -> None:
        with self._lock:
            self.requests.append(body)
            self.authorizations.append(authorization)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeOpenAIServer is not running; use it as a context manager")
        return f"http://{HOST}:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._server = _Server(self, self.port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
        self._server = None
