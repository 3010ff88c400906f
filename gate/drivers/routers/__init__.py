"""Routers: what moves traffic between stable and canary (one interface, several backends)."""
