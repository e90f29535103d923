"""Moved to :mod:`publisher.trs.records` (see publisher/sources/trs.py for when to delete this file)."""

from publisher.trs.records import *  # noqa: F403
