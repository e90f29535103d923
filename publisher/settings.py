"""Publisher settings: defaults < TOML file < ``KIWOOM_PUBLISHER_*`` and ``KIWOOM_CACHE_REDIS_URL`` < CLI."""

from __future__ import annotations

import logging
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from kiwoom_cache import contract
from kiwoom_cache.contract import FeedInfo, Source
from kiwoom_cache.env import PUBLISHER_ENV_PREFIX, env_sources
from kiwoom_cache.urls import mask_url
from publisher.limiter import DEFAULT_SAFETY_MARGIN, RateLimiter, with_margin
from publisher.market_session import HolidayCalendar
from publisher.sources import spec_for
from publisher.sources.ocx_settings import OcxSettings, SimSettings
from publisher.sources.rest_settings import RestMode, RestSettings
from publisher.trs import DEFAULT_TR, TrSpec, tr_spec

__all__ = ["DEFAULT_FEEDS", "FeedSettings", "PublisherSettings", "RestMode", "StandbyLogin", "load_settings"]

log = logging.getLogger(__name__)


class StandbyLogin(StrEnum):
    """When a standby publisher logs in to its source (docs/high-availability.md)."""

    #: Logged in and idle: takes over with polling at once.
    hot = "hot"
    #: Logs in only when it takes over (for one Kiwoom ID that may not be logged in on two PCs at once).
    cold = "cold"


class FeedSettings(BaseModel):
    """One ranking query polled on its own timer: a TR and its inputs (Kiwoom's input codes).

    Inputs may be given flat (``market = "001"``, as configs did before a feed could name its TR) or under
    ``params``; every input is checked against the TR's spec (publisher/trs/catalogue.py) at start, and one
    left out takes the spec's default. A feed without ``tr`` is an opt10023 feed.
    """

    model_config = ConfigDict(extra="forbid")

    feed: str
    title: str = ""
    tr: str = DEFAULT_TR
    params: dict[str, str] = Field(default_factory=dict, description="TR inputs by parameter name")
    interval_s: float = Field(10.0, ge=0.1, description="poll period; the shared limiter may stretch it")

    @model_validator(mode="before")
    @classmethod
    def _flat_inputs(cls, data: Any) -> Any:
        """Keys that are not fields are the TR's inputs (the flat form of existing configs)."""
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        flat = {k: v for k, v in data.items() if k not in known}
        if not flat:
            return data
        nested = data.get("params") or {}
        if not isinstance(nested, dict):
            return data
        both = set(flat) & set(nested)
        if both:
            raise ValueError(f"{data.get('feed')}: {', '.join(sorted(both))} given both flat and under params")
        return {**{k: v for k, v in data.items() if k in known}, "params": {**nested, **flat}}

    @field_validator("feed")
    @classmethod
    def _slug(cls, value: str) -> str:
        return contract.check_feed(value)

    @field_validator("tr")
    @classmethod
    def _tr(cls, value: str) -> str:
        return tr_spec(value).code

    @field_validator("params", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        # TOML numbers (minutes = 5) are Kiwoom's digits all the same; anything else is refused below.
        if isinstance(value, dict):
            return {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _inputs(self) -> FeedSettings:
        try:
            full = tr_spec(self.tr).validate(self.params)
        except ValueError as exc:
            raise ValueError(f"feed {self.feed}: {exc}") from None
        self.__dict__["params"] = full  # completed with defaults, in SetInputValue order (no re-validation)
        return self

    @property
    def spec(self) -> TrSpec:
        return tr_spec(self.tr)

    def inputs(self) -> tuple[tuple[str, str], ...]:
        """(parameter, value) in the TR's input order (each source spells the names its own way)."""
        return tuple((i.param, self.params[i.param]) for i in self.spec.inputs)

    def info(self) -> FeedInfo:
        return FeedInfo(self.feed, self.title or self.feed, self.tr, dict(self.params), self.interval_s)


DEFAULT_FEEDS = [
    FeedSettings(feed="kospi-surge", title="코스피 거래량급증", params={"market": "001"}),
    FeedSettings(feed="kosdaq-surge", title="코스닥 거래량급증", params={"market": "101"}),
]


class PublisherSettings(OcxSettings, SimSettings, RestSettings, BaseSettings):
    """Everything a publisher reads: its own settings here, each source's in the block the source declares (flat
    keys all the same: ``ocx_max_pages``, ``sim_seed``, ``rest_mode`` ...)."""

    model_config = SettingsConfigDict(env_prefix=PUBLISHER_ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    redis_url: str = "redis://127.0.0.1:6379/0"
    source: Source = Source.sim
    feeds: list[FeedSettings] = Field(default_factory=lambda: [f.model_copy() for f in DEFAULT_FEEDS])
    history_maxlen: int = Field(contract.DEFAULT_HISTORY_MAXLEN, ge=1)
    heartbeat_s: float = Field(contract.DEFAULT_HEARTBEAT_S, gt=0)
    status_ttl_s: float = Field(contract.DEFAULT_STATUS_TTL_S, gt=0)
    #: Published limits as [count, seconds] pairs; the limiter keeps ``safety_margin`` of each. None: the source's
    #: own (OCX: Kiwoom's 5/s plus the burst-penalty guide and ~1,000/h; REST: 5/s).
    tr_limits: list[tuple[int, float]] | None = None
    #: Seconds at least between two requests (token calls, pages and retries included). None: the source's own
    #: (REST: 0.2 s, as Kiwoom's examples wait; OCX: none beyond ``tr_limits``).
    min_spacing_s: float | None = Field(None, ge=0, le=60)
    safety_margin: float = Field(DEFAULT_SAFETY_MARGIN, gt=0, le=1)
    #: Kiwoom's penalty after a -200 refusal (17 s after one burst, per its guide).
    refusal_backoff_s: float = Field(17.0, ge=0)
    request_timeout_s: float = Field(10.0, gt=0)
    #: Follow the KRX session (slow down or pause outside trading hours). Default: only for Kiwoom's real data
    #: (the OCX, or REST on Kiwoom's domains: not the fake server).
    respect_market_hours: bool | None = None
    #: Poll period outside pre-open/regular/closing auction; None pauses polling there.
    off_hours_interval_s: float | None = Field(None, ge=1.0)
    #: KRX closing days (ISO dates) replacing the `holidays` library's KRX calendar; None keeps the library's.
    holidays: list[str] | None = None
    #: How often GetConnectState() is checked while running.
    connection_check_s: float = Field(10.0, gt=0)
    #: Seconds between CommConnect() attempts after a failed login or a lost connection.
    login_retry_s: float = Field(30.0, gt=0)
    #: Logins refused in a row (-100, a wrong or stale 자동로그인 password; REST: app key refused) before the
    #: publisher exits: with ExitCode.RESTART for the OCX, ExitCode.CONFIG for REST keys.
    login_max_failures: int = Field(3, ge=1)
    #: Follow Kiwoom's daily server maintenance (kiwoom_maintenance.py): pause through it instead of retrying.
    #: Default: for the sources that log in to Kiwoom's servers (the OCX, or REST on Kiwoom's domains).
    respect_maintenance: bool | None = None
    #: Set by `kiwoom-publisher supervise` for its child: how often it restarted the publisher (in the status).
    supervisor_restarts: int = Field(0, ge=0)
    #: Leadership among publishers on the same feeds: the leases expire this long after the leader's last renewal.
    lease_ttl_s: float = Field(15.0, gt=0)
    #: How often a standby looks at the leases; takeover comes within ``lease_ttl_s`` plus this.
    lease_check_s: float = Field(1.0, gt=0)
    #: A standby's login: hot (logged in, idle, sends no TR) or cold (logs in when it takes over).
    standby_login: StandbyLogin = StandbyLogin.hot
    #: Lead whenever healthy: a non-preferred leader hands over to this publisher when it is ready.
    prefer_leader: bool = False
    #: The feeds this publisher may lead (None: all of ``feeds``); two publishers on disjoint lists share the work.
    lead: list[str] | None = None
    log_level: str = "INFO"

    @field_validator("feeds")
    @classmethod
    def _unique(cls, feeds: list[FeedSettings]) -> list[FeedSettings]:
        names = [f.feed for f in feeds]
        if not feeds:
            raise ValueError("configure at least one feed")
        if len(set(names)) != len(names):
            raise ValueError(f"feed names must be unique, got {names}")
        return feeds

    @model_validator(mode="after")
    def _ttl(self) -> PublisherSettings:
        if self.status_ttl_s <= self.heartbeat_s:
            raise ValueError(f"status_ttl_s ({self.status_ttl_s}) must exceed heartbeat_s ({self.heartbeat_s})")
        if self.lease_ttl_s <= self.heartbeat_s:
            # The leader renews with its heartbeat: a TTL within one heartbeat would lapse between renewals.
            raise ValueError(f"lease_ttl_s ({self.lease_ttl_s}) must exceed heartbeat_s ({self.heartbeat_s})")
        if self.lead is not None:
            if unknown := sorted(set(self.lead) - {f.feed for f in self.feeds}):
                raise ValueError(f"lead names feeds that are not configured: {unknown}")
            if not self.lead:
                raise ValueError("lead is empty: leave it out to lead every feed")
        return self

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            HolidayCalendar.from_iso(value)  # raises a ValueError naming the bad date
        return value

    def follows_market_hours(self) -> bool:
        if self.respect_market_hours is None:
            return self._on_kiwoom()  # real market data
        return self.respect_market_hours

    def follows_maintenance(self) -> bool:
        if self.respect_maintenance is None:
            return self._on_kiwoom()
        return self.respect_maintenance

    def _on_kiwoom(self) -> bool:
        return self.source is Source.kiwoom or (self.source is Source.rest and self.serves_kiwoom())

    def calendar(self, today: date | None = None) -> HolidayCalendar:
        """The configured ``holidays``, or KRX's calendar for the years around ``today`` (default: today in KST)."""
        if self.holidays is None:
            return HolidayCalendar.default(today)
        return HolidayCalendar.from_iso(self.holidays)

    def sustainable_rate(self) -> float:
        """Requests per second the limiter allows in the long run."""
        return min(w.limit / w.seconds for w in with_margin(self.limits(), self.safety_margin))

    def limits(self) -> list[tuple[int, float]]:
        """The request limits in force: ``tr_limits`` if set, else the source's published ones."""
        return list(self.tr_limits) if self.tr_limits is not None else list(spec_for(self.source).tr_limits)

    def min_spacing(self) -> float:
        """The spacing in force: ``min_spacing_s`` if set, else the source's."""
        return self.min_spacing_s if self.min_spacing_s is not None else spec_for(self.source).min_spacing_s

    def limiter(self) -> RateLimiter:
        """The one limiter all feeds share (and the REST source's token calls): the limits and the minimum spacing,
        both with the safety margin (0.2 s becomes 0.22 s at 0.9: calls leave 0.2 s apart but may arrive closer,
        when the first waited for a new connection and the second did not)."""
        return RateLimiter(with_margin(self.limits(), self.safety_margin),
                           min_spacing_s=self.min_spacing() / self.safety_margin)

    def request_budget_s(self) -> float:
        """How long a source may spend on one request, pages and retries included: a little less than
        ``request_timeout_s``, so it gives up with its own reason before the poller's timeout cancels it."""
        return self.request_timeout_s - min(1.0, self.request_timeout_s / 10)

    def demanded_rate(self) -> float:
        return sum(1.0 / f.interval_s for f in self.feeds)

    def masked_url(self) -> str:
        """The Redis URL with any password hidden, for logs and the operator window."""
        return mask_url(self.redis_url)

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, (self.masked_url() if key == "redis_url" else value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # model_config["toml_file"] is set only by load_settings(config=...); None reads nothing.
        return init_settings, *env_sources(settings_cls), TomlConfigSettingsSource(settings_cls)


def load_settings(config: str | Path | None = None, **overrides: Any) -> PublisherSettings:
    """Settings from an optional TOML file, the environment and explicit overrides (highest first)."""
    cls: type[PublisherSettings] = PublisherSettings
    if config:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")

        class FromFile(PublisherSettings):
            model_config = SettingsConfigDict(**{**PublisherSettings.model_config, "toml_file": path})

        cls = FromFile
    settings = cls(**{k: v for k, v in overrides.items() if v is not None})
    if settings.demanded_rate() > settings.sustainable_rate():
        log.warning(
            "feeds ask for %.2f TR/s but Kiwoom's limits allow %.2f TR/s: the shared limiter will stretch "
            "poll periods (raise interval_s to silence this)", settings.demanded_rate(), settings.sustainable_rate())
    return settings
