"""Performance contracts: pydantic models, units, SLI templates and loading with precise errors.

Pure: no network, no clock, no Kubernetes. Reads files only when asked to load one.
"""
