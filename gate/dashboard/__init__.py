"""The reviewers' dashboard (FastAPI): runs, evidence, approve/abort/retry; and the drop-in endpoints."""
