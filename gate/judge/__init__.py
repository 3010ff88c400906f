"""The judge: pure statistics from evidence to verdicts and decisions.

No I/O, no clock, no Kubernetes, no Locust. It is handed evidence; it never runs a query.
"""
