"""The REST source's settings block: part of :class:`~publisher.settings.PublisherSettings`, declared here, next
to the source that reads it, so the settings never import a source. The app key and secret come from the
environment only (publisher/sources/rest.py)."""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, Field


class RestMode(StrEnum):
    """Kiwoom's REST domains; app keys are issued for one of them."""

    #: api.kiwoom.com, real accounts.
    real = "real"
    #: mockapi.kiwoom.com, 모의투자 (KRX only).
    mock = "mock"


class RestSettings(BaseModel):
    """``--source rest``."""

    #: Kiwoom's real or mock (모의투자) domain.
    rest_mode: RestMode = RestMode.real
    #: Another base URL instead of the domain (the fake server, ``python -m publisher.sources.rest_fake``).
    rest_base_url: str | None = None
    #: Continuation pages merged into one ranking at most.
    rest_max_pages: int = Field(5, ge=1, le=50)
    rest_http_timeout_s: float = Field(5.0, gt=0)
    #: Retries after a timeout, a connection error or a 5xx answer (with backoff).
    rest_retries: int = Field(2, ge=0, le=10)

    def serves_kiwoom(self) -> bool:
        """Whether the REST source reads Kiwoom's own servers (their market data, their maintenance), not another
        URL such as the fake server. A proxy in front of Kiwoom says so with ``respect_*`` set explicitly."""
        if self.rest_base_url is None:
            return True
        host = urlsplit(self.rest_base_url).hostname or ""
        return host == "kiwoom.com" or host.endswith(".kiwoom.com")
