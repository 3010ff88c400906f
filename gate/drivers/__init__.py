"""Drivers: everything that touches the outside world (Prometheus, Locust, Chaos Toolkit,
routers, Kubernetes, the run store, notifiers). The engine calls them; they never call the engine."""
