"""Moved to :mod:`publisher.trs` (the TR catalogue is the publisher's ground floor, not a source's).

Only ARCHITECTURE.md, docs/contract.md and a comment in kiwoom_cache still name this path; delete this file when
they point at publisher/trs/ (docs/notes-desk2.md). Nothing imports it.
"""

from publisher.trs import *  # noqa: F403
