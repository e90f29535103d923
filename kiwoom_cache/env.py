"""Environment variable names: each process has its own prefix, and the Redis URL is the one name both read.

``KIWOOM_API_*`` configures a replica, ``KIWOOM_PUBLISHER_*`` the publisher, and ``KIWOOM_CACHE_REDIS_URL`` is
shared, so one environment (a compose file, the demo) can hold both processes' settings without a name that
means two things (``tests/test_env_names.py`` holds that).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

#: The only variable both processes read.
REDIS_URL_ENV = "KIWOOM_CACHE_REDIS_URL"
API_ENV_PREFIX = "KIWOOM_API_"
PUBLISHER_ENV_PREFIX = "KIWOOM_PUBLISHER_"


class SharedRedisUrl(PydanticBaseSettingsSource):
    """``redis_url`` from :data:`REDIS_URL_ENV`; the process-prefixed spelling is not read at all."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        value = os.environ.get(REDIS_URL_ENV)
        return {} if value is None else {"redis_url": value}


class PrefixedEnv(EnvSettingsSource):
    """The process's own ``<PREFIX>*`` variables, minus ``redis_url`` (see :class:`SharedRedisUrl`)."""

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        values.pop("redis_url", None)
        return values


def env_sources(settings_cls: type[BaseSettings]) -> tuple[PydanticBaseSettingsSource, ...]:
    """The environment sources of a settings class, highest priority first."""
    return PrefixedEnv(settings_cls), SharedRedisUrl(settings_cls)


def env_names(settings_cls: type[BaseSettings]) -> set[str]:
    """Every top-level variable name a settings class reads (nested ``__`` names extend these)."""
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    names = {f"{prefix}{name}".upper() for name in settings_cls.model_fields if name != "redis_url"}
    if "redis_url" in settings_cls.model_fields:
        names.add(REDIS_URL_ENV)
    return names
