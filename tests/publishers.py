"""Build a publisher on a Qt loop over an OCX-shaped control (simulated or replayed), as the CLI does."""

from __future__ import annotations

from typing import Any

from kiwoom_cache.contract import Source
from publisher.app import Publisher
from publisher.controls.ocx import Control
from publisher.qt_loop import QtLoop
from publisher.settings import PublisherSettings
from publisher.sources.ocx import OcxSource


def ocx_publisher(settings: PublisherSettings, control: Control, **kw: Any) -> Publisher:
    mode = settings.source.value if settings.source in (Source.sim, Source.replay) else None
    return Publisher(settings, OcxSource(control, account_mode=mode), QtLoop(), **kw)
