"""The real OpenAPI+ control: ``QAxWidget("KHOPENAPI.KHOpenAPICtrl.1")``, Windows only.

Imported lazily by the kiwoom source factory (publisher/sources/ocx.py), so Linux never needs QAxContainer.
The control must be created on the GUI thread of a ``QApplication`` (not a QCoreApplication) in 32-bit
Python, with Kiwoom's OpenAPI+ installed and registered; its ``dynamicCall`` and signals are exactly what
:class:`publisher.sources.ocx.OcxSource` uses with the simulated control.
"""

from __future__ import annotations

import sys

from kiwoom_cache.errors import KiwoomCacheError
from publisher.controls import ocx
from publisher.controls.ocx import Control


class ControlUnavailableError(KiwoomCacheError, RuntimeError):
    """The real control cannot be created here; the message says why and what to do."""


def create_control() -> Control:
    if sys.platform != "win32":
        raise ControlUnavailableError(
            "--source kiwoom needs Windows with Kiwoom OpenAPI+ installed; on this machine use --source rest "
            "(Kiwoom's REST API), --source sim or --source replay FILE")
    if sys.maxsize > 2**32:
        raise ControlUnavailableError(
            "Kiwoom's OpenAPI+ OCX is 32-bit: run the publisher with a 32-bit (win32) Python 3.11")
    try:
        from PyQt5.QAxContainer import QAxWidget  # noqa: PLC0415 - Windows-only module
    except ImportError as exc:
        raise ControlUnavailableError(f"PyQt5.QAxContainer is missing ({exc}); reinstall PyQt5") from exc
    widget = QAxWidget(ocx.PROG_ID)
    if widget.isNull():
        raise ControlUnavailableError(
            f"could not create {ocx.PROG_ID}: is Kiwoom OpenAPI+ installed (and registered with regsvr32)?")
    return widget
