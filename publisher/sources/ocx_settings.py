"""The OCX sources' settings block (kiwoom, sim, replay): part of :class:`~publisher.settings.PublisherSettings`,
declared here, next to the sources that read it, so the settings never import a source."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class OcxSettings(BaseModel):
    """Every OCX source (the real control, the simulated one and a replay)."""

    #: Continuation pages (sPrevNext "2") merged into one ranking at most; each page is a request of its own under
    #: Kiwoom's limits, so a feed whose ranking spans pages costs that many requests per poll.
    ocx_max_pages: int = Field(2, ge=1, le=50)


class SimSettings(BaseModel):
    """The simulated control (``--source sim``)."""

    #: What the simulated Kiwoom server enforces (default: 5 TR/s and 1,000 TR/h, like Kiwoom).
    sim_limits: list[tuple[int, float]] = Field(default_factory=lambda: [(5, 1.0), (1000, 3600.0)])
    sim_seed: int | None = 1
    #: Rows per simulated answer (Kiwoom's 200); fewer make the simulated rankings span continuation pages.
    sim_page_rows: int = Field(200, ge=1, le=200)
    #: Simulated minutes per real second in the simulated market.
    sim_step_s: float = Field(1.0, gt=0)
    #: A file whose presence makes the simulated server demand a version update (-102) at the first login; the
    #: control deletes it, as Kiwoom's updater replaces its files, so the restarted publisher logs in.
    sim_version_update_file: Path | None = None
