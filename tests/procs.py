"""The live process tree from /proc (Linux): what tests use to find a server's workers or a demo's orphans."""

from __future__ import annotations

from pathlib import Path


def parents() -> dict[int, int]:
    """pid -> parent pid for every live (non-zombie) process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
            if fields[0] != "Z":
                out[int(entry.name)] = int(fields[1])
    return out


def children(pid: int) -> set[int]:
    """Live direct children of ``pid``."""
    return {child for child, parent in parents().items() if parent == pid}


def descendants(pid: int) -> set[int]:
    """Live children of ``pid``, their children, and so on."""
    tree = parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in tree.items() if parent in frontier} - found
        found |= frontier
    return found
