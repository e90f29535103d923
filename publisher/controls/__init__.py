"""Control objects the adapter drives: the real OCX, a simulation and a replay, all alike to it."""
