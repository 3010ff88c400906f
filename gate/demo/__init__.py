"""The demo: an instrumented service with fault switches and a loopback topology
(Prometheus, nginx, stable and canary) in which `gate demo` runs a real rollout."""
