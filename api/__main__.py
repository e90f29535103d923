"""``python -m api``: run one replica (see ``api.cli``)."""

from __future__ import annotations

from api.cli import main

main()
