"""Fault injection with Chaos Toolkit, run in its own process; every fault recorded and undone."""
