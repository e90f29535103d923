"""The event loop a source runs on: Qt's (the OCX control, the simulated and replayed controls, the operator
window) or asyncio's (the REST source). One place, so the publisher and the doctor make the same one."""

from __future__ import annotations

import os
import sys
from typing import Any

from kiwoom_cache.contract import Source
from publisher.settings import PublisherSettings


def make_qt_loop(settings: PublisherSettings, *, headless: bool) -> Any:
    """A Qt application and loop: ActiveX and the window need a QApplication, headless sim/replay only an event loop."""
    if headless and settings.source != Source.kiwoom:
        # Never for the real control: hosting an ActiveX control needs a native window (QAxWidget).
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5.QtCore import QCoreApplication  # noqa: PLC0415 - Qt starts only when we run
    from PyQt5.QtWidgets import QApplication  # noqa: PLC0415

    from publisher.qt_loop import QtLoop  # noqa: PLC0415

    needs_widgets = settings.source == Source.kiwoom or not headless
    global _APP  # noqa: PLW0603 - the application must outlive run()'s locals
    _APP = QCoreApplication.instance() or (QApplication if needs_widgets else QCoreApplication)(sys.argv[:1])
    return QtLoop()


def make_asyncio_loop() -> Any:
    from publisher.aio_loop import AsyncioLoop  # noqa: PLC0415

    return AsyncioLoop()


_APP: Any = None
