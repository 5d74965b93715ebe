"""The relay's HTTP API (twisted.web): health, metrics and link control.

- ``GET /healthz``: 200 when every link is ``running``, 503 otherwise; the JSON body
  gives each link's state and main counters.
- ``GET /metrics``: Prometheus text format.
- ``POST /links/NAME/pause``, ``.../resume``: 200 with the link's state once done;
  ``.../restart``: 202 at once (the restart goes on in the background); 404 for an
  unknown link or action, 409 when the link cannot do it now (it is stopping, say).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txamqp091.relay.link import LinkStateError, RelayLink

__all__ = ["ACTIONS", "relay_resource"]

#: The link actions ``POST /links/NAME/ACTION`` takes.
ACTIONS = ("pause", "resume", "restart")


def _json(request: Request, code: int, body: Mapping[str, Any]) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")  # type: ignore[no-untyped-call]
    return json.dumps(body, sort_keys=True).encode() + b"\n"


class _Health(Resource):
    isLeaf = True

    def __init__(self, links: Mapping[str, RelayLink]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._links = links

    def render_GET(self, request: Request) -> bytes:
        states = {name: link.describe() for name, link in self._links.items()}
        healthy = all(link.state == "running" for link in self._links.values())
        return _json(request, 200 if healthy else 503, {"healthy": healthy, "links": states})


class _Metrics(Resource):
    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())  # type: ignore[no-untyped-call]
        return generate_latest(self._registry)


class _Links(Resource):
    """``/links/NAME/ACTION``."""

    isLeaf = True

    def __init__(self, links: Mapping[str, RelayLink]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._links = links

    def render_GET(self, request: Request) -> bytes:
        return _json(request, 200, {name: link.describe() for name, link in self._links.items()})

    def render_POST(self, request: Request) -> bytes | int:
        path = [segment.decode("utf-8", "replace") for segment in request.postpath or []]
        if len(path) != 2 or path[0] not in self._links or path[1] not in ACTIONS:
            return _json(
                request,
                404,
                {"error": "POST /links/NAME/ACTION, ACTION one of " + ", ".join(ACTIONS)},
            )
        link = self._links[path[0]]
        try:
            done: Deferred[None] = getattr(link, path[1])()
        except LinkStateError as e:
            return _json(request, 409, {"error": str(e), "state": link.state})
        if path[1] == "restart":
            # Connecting again may take as long as a broker stays away: accepted now,
            # the state tells the rest.
            return _json(request, 202, {"link": link.name, "state": link.state})

        def answer(result: object) -> None:
            if request.finished or getattr(request, "_disconnected", False):
                return
            if isinstance(result, Failure):
                body = _json(request, 500, {"error": str(result.value), "state": link.state})
            else:
                body = _json(request, 200, {"link": link.name, "state": link.state})
            request.write(body)  # type: ignore[no-untyped-call]
            request.finish()  # type: ignore[no-untyped-call]

        done.addBoth(answer)
        return NOT_DONE_YET


def relay_resource(links: Mapping[str, RelayLink], registry: CollectorRegistry) -> Resource:
    """The root resource of the relay's HTTP API."""
    root = Resource()  # type: ignore[no-untyped-call]
    root.putChild(b"healthz", _Health(links))
    root.putChild(b"metrics", _Metrics(registry))
    root.putChild(b"links", _Links(links))
    return root
