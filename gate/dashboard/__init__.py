"""The reviewers' dashboard: a FastAPI app over the run store — pages, a JSON API, live updates,
and approve / abort / retry for authenticated reviewers (through the store's inbox, audited).

A face: it reads records and queues requests; it never drives a rollout itself. The kubernetes
client is imported only by ``kubeauth`` (TokenReview / SubjectAccessReview), and only when enabled.
"""
