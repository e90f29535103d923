"""Local orchestration of the whole system for the demo and the end-to-end tests (not shipped to users)."""

from stack.local import Replica, Stack

__all__ = ("Replica", "Stack")
