"""Request/response values and the per-request context handlers receive.

Owns: ``SimRequest`` (transport-independent, so ``$batch`` can run inner requests through
the same pipeline), ``SimResponse``, ``SimConfig`` and ``Ctx``. Must not import anything
from ``bridge`` outside ``bridge.simulator``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import GraphError, bad_request
from .model import App, Mailbox, Message, User, World
from .odata import parse_prefer

if TYPE_CHECKING:
    from .faults import Faults
    from .throttle import Throttle

JSON_CT = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)
MAX_BODY = 4 * 1024 * 1024  # §13.5: 4,194,304 bytes


@dataclass
class SimRequest:
    method: str
    path: str  # percent-encoded path, starting with "/"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    prefer: list[str] = field(default_factory=list)  # every Prefer header value
    body: bytes = b""
    in_batch: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        if not self.body.strip():
            raise bad_request("Empty Payload, JSON content expected.", "BadRequest")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise GraphError(
                400, "UnableToDeserializePostBody", "were unable to deserialize "
            ) from None


@dataclass
class SimResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    payload: Any = None  # the JSON value, kept for $batch responses

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> SimResponse:
        h = {"Content-Type": JSON_CT, "OData-Version": "4.0", "Cache-Control": "no-cache"}
        h.update(headers or {})
        return cls(status, json.dumps(payload).encode(), h, payload)

    @classmethod
    def empty(cls, status: int = 204, headers: Mapping[str, str] | None = None) -> SimResponse:
        return cls(status, b"", dict(headers or {}))


@dataclass
class SimConfig:
    default_page_size: int = 10
    subscription_max_minutes: int = 4230  # §19.6: default cap (configurable)
    subscriptions_per_mailbox: int = 1000
    validation_timeout: float = 10.0  # §19.2
    notification_retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)
    webhook_ca_file: str | None = None  # trust for https notification URLs
    allow_http_webhooks: bool = True  # http:// allowed for loopback receivers
    upload_session_minutes: int = 15


@dataclass
class Ctx:
    """Everything a handler needs for one (possibly inner-batch) request."""

    world: World
    config: SimConfig
    faults: Faults
    throttle: Throttle
    req: SimRequest
    base_url: str
    app: App
    claims: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    user: User | None = None
    mailbox: Mailbox | None = None
    services: Any = None  # the Simulator's service registry (notifier, uploads, sender)
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def prefer(self) -> dict[str, str]:
        return parse_prefer(self.req.prefer)

    @property
    def immutable(self) -> bool:
        # §17: Prefer: IdType="ImmutableId" on this request.
        return self.prefer.get("idtype", "").lower() == "immutableid"

    def ident(self, m: Message) -> str:
        return m.immutable_id if self.immutable else m.rest_id

    @property
    def graph_root(self) -> str:
        return f"{self.base_url}/v1.0"

    @property
    def mb(self) -> Mailbox:
        assert self.mailbox is not None
        return self.mailbox

    @property
    def u(self) -> User:
        assert self.user is not None
        return self.user
