"""Statistical primitives of the judge: always-valid bounds, rank tests, quantile and proportion bounds.

Pure functions over numpy arrays and floats. No I/O, no clock, no knowledge of objectives or policies.
"""
