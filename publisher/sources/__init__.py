"""Ranking sources by name, imported only when chosen (like encode/broadcaster's backends).

Each :class:`~kiwoom_cache.contract.Source` maps to a factory, given as a dotted path so that choosing
one never imports another's dependencies: Qt (and on Windows the ActiveX container) is imported by
the OCX sources only. ``qt`` says which event loop the source needs (:mod:`publisher.loop`), ``tr_limits`` what
Kiwoom allows it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, NamedTuple

from kiwoom_cache.contract import Source
from publisher.limiter import KIWOOM_TR_LIMITS

if TYPE_CHECKING:
    from publisher.sources.base import RankingSource, SourceContext


class SourceSpec(NamedTuple):
    #: ``"package.module:function"`` building the source from a :class:`SourceContext`.
    factory: str
    #: True: needs a Qt event loop (an OCX control); False: runs on asyncio without Qt.
    qt: bool
    #: Published request limits, (count, seconds) pairs, unless the settings give ``tr_limits``.
    tr_limits: tuple[tuple[int, float], ...] = KIWOOM_TR_LIMITS
    #: Seconds at least between two requests, unless the settings give ``min_spacing_s``.
    min_spacing_s: float = 0.0


#: Kiwoom REST: 5 queries per second (docs/kiwoom-rest.md); the mock domain may allow fewer.
REST_TR_LIMITS: Final[tuple[tuple[int, float], ...]] = ((5, 1.0),)
#: Kiwoom's REST examples wait 0.2 s between calls (docs/kiwoom-rest.md): a spacing, not only a window.
REST_MIN_SPACING_S: Final = 0.2


REGISTRY: Final[Mapping[Source, SourceSpec]] = MappingProxyType({
    Source.kiwoom: SourceSpec("publisher.sources.ocx:create_kiwoom", qt=True),
    Source.sim: SourceSpec("publisher.sources.ocx:create_sim", qt=True),
    Source.replay: SourceSpec("publisher.sources.ocx:create_replay", qt=True),
    Source.rest: SourceSpec("publisher.sources.rest:create", qt=False, tr_limits=REST_TR_LIMITS,
                            min_spacing_s=REST_MIN_SPACING_S),
})


def spec_for(source: Source | str) -> SourceSpec:
    try:
        return REGISTRY[Source(source)]
    except (KeyError, ValueError):
        names = ", ".join(s.value for s in Source)
        raise ValueError(f"unknown source {source!r}; expected one of {names}") from None


def create_source(source: Source | str, context: SourceContext) -> RankingSource:
    """Import the source's module and build it."""
    module, _, name = spec_for(source).factory.partition(":")
    factory: Callable[[SourceContext], RankingSource] = getattr(importlib.import_module(module), name)
    return factory(context)
