"""One gate's reconciliation, blocking (run in a worker thread): a straight sequence of idempotent steps.

``GateWorker.step(body, now)``:

1. the spec: validate the gate (and the contract it references); refused → status ``Invalid`` with the
   field path, a Warning Event once per generation, and nothing moves;
2. the run: the one named in ``status.runId`` is resumed from the run store (after a restart or on
   another replica), exactly where its record says;
3. the revision: a canary revision (pod template of ``target.canary.deployment``) the last run was not
   for starts a new run; a run still going for an older revision is rolled back first (superseded);
4. reviewers: the approve / abort annotations go into the run's inbox and are removed;
5. ``advance(now)``: what is due; the time something is next due comes back;
6. the status, when it changed (one API call), and Events for what changed, with the numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from gate.contract import Contract, ContractError
from gate.drivers import kube
from gate.drivers.store import StoreError
from gate.operator import resource, status
from gate.operator.engine_bridge import EngineParts, GateRun, base_library, resume_run, start_run
from gate.operator.metrics import OperatorMetrics

log = logging.getLogger(__name__)

GATES = kube.Resource(resource.GROUP, resource.VERSION, resource.PLURAL, resource.KIND)
CONTRACTS = kube.Resource(resource.GROUP, resource.VERSION, resource.CONTRACT_PLURAL, resource.CONTRACT_KIND)
CONFIGMAPS = kube.Resource("", "v1", "configmaps", resource.CONFIGMAP_KIND)
IDLE = 30.0  # seconds between looks at a gate with nothing due (events wake it sooner)


@dataclass(frozen=True)
class Revision:
    """A canary Deployment's revision: a digest of its pod template, and its images."""

    digest: str
    images: tuple[str, ...]


def revision_of(deployment: dict[str, Any]) -> Revision:
    """The revision of a Deployment object: what changes when its pods would be replaced."""
    template = (deployment.get("spec") or {}).get("template") or {}
    text = json.dumps(template, sort_keys=True, separators=(",", ":"), default=str)
    containers = ((template.get("spec") or {}).get("containers")) or []
    images = tuple(str(c.get("image", "")) for c in containers if isinstance(c, dict))
    return Revision(hashlib.sha256(text.encode()).hexdigest()[:16], images)


@dataclass
class Outcome:
    """What one step did, for the async side: Events to post, when to come back."""

    events: list[status.EventView] = field(default_factory=list)
    due: float | None = None


class GateWorker:
    """Reconciles one PerformanceGate; ``step`` is called by one thread at a time."""

    def __init__(
        self,
        parts: EngineParts,
        metrics: OperatorMetrics,
        *,
        namespace: str,
        name: str,
        revisions: dict[tuple[str, str], Revision],
        status_every: float = 30.0,
    ) -> None:
        self.parts = parts
        self.metrics = metrics
        self.namespace = namespace
        self.name = name
        self.revisions = revisions
        self.ref = kube.ObjectRef(GATES, namespace, name)
        self.run: GateRun | None = None
        self.view: status.RunView | None = None
        self.decision: status.DecisionView | None = None
        self.written: dict[str, Any] | None = None
        self.invalid_generation: int | None = None
        self.phase = "Waiting"
        self._contract: tuple[str, Contract | None, str | None] | None = None  # (key, contract, problems)
        self._superseding: str | None = None
        self._document: dict[str, Any] = {}
        self.run_revision = Revision("", ())
        self.status_every = status_every
        self._status_at = 0.0

    # -------------------------------------------------------------------------------------- step

    def step(self, body: dict[str, Any], now: float) -> Outcome:
        out = Outcome()
        meta = body.get("metadata") or {}
        generation = meta.get("generation")
        previous = body.get("status") or {}
        if self.written is None:
            self.written = dict(previous)
        contract, invalid = self._validate(body)
        if invalid is not None and self.invalid_generation != generation:
            self.invalid_generation = generation
            out.events.append(status.EventView("Warning", "InvalidSpec", status.bounded(invalid)))
        self._load_run(previous)
        revision = self._revision(contract, generation, meta)
        if contract is not None and revision is not None:
            event = self._follow_revision(contract, revision, body, now)
            if event is not None:
                out.events.append(event)
        self._reviewers(meta, now)
        before = self.view
        if self.run is not None:
            started = time.perf_counter()
            try:
                out.due = self.run.advance(now)
            except StoreError:
                # Another replica moved the run on (the store refused our stale transition): forget
                # what we hold; the next step resumes the run from its record.
                self.run.close()
                self.run, self.view = None, None
                raise
            finally:
                self.metrics.evaluation.observe(time.perf_counter() - started)
                self.metrics.evaluations.inc()
            self.view = self.run.view()
            for decision in self.run.take_decisions():
                changed = self.decision is None or (self.decision.action, self.decision.reason) != (
                    decision.action,
                    decision.reason,
                )
                self.decision = decision
                self.metrics.decisions.labels(decision.action).inc()
                if changed:  # the same decision look after look is one Event, not one per look
                    out.events.append(status.decision_event(decision))
            if self.view is not None:
                out.events = [*status.transition_events(before, self.view), *out.events]
            if self.run.terminal:
                self.run.close()
                if self._superseding is not None:
                    out.due = now  # the old run is over: start the new revision's at once
        new = status.status_of(
            view=self.view,
            decision=self.decision,
            invalid=invalid,
            generation=generation,
            revision=self.run_revision.digest,
            images=self.run_revision.images,
            now=now,
            previous=self.written,
        )
        if invalid is None and contract is not None and self.view is None and revision is None:
            dep = contract.spec.target.canary.deployment
            new["message"] = f"waiting for the canary Deployment {self.namespace}/{dep}"
        self._write_status(new)
        self.phase = new["phase"]
        if self.view is not None:
            self.metrics.weight.labels(self.namespace, self.name).set(self.view.weight)
        return out

    # ----------------------------------------------------------------------------------- pieces

    def _validate(self, body: dict[str, Any]) -> tuple[Contract | None, str | None]:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        referenced: dict[str, Any] | None = None
        ref = spec.get("contractRef") if isinstance(spec, dict) else None
        if isinstance(ref, dict) and isinstance(ref.get("name"), str):
            try:
                kind = CONFIGMAPS if ref.get("kind") == resource.CONFIGMAP_KIND else CONTRACTS
                referenced = self.parts.kube.get(kube.ObjectRef(kind, self.namespace, ref["name"]))
            except kube.KubeNotFoundError:
                referenced = None
        key = json.dumps(
            [meta.get("generation"), spec, (referenced or {}).get("metadata", {}).get("resourceVersion")],
            sort_keys=True,
            default=str,
        )
        if self._contract is not None and self._contract[0] == key:
            return self._contract[1], self._contract[2]
        if len(key) > resource.MAX_OBJECT_BYTES:
            problems: str | None = f"spec: the gate is larger than {resource.MAX_OBJECT_BYTES // 1024} KiB"
            contract = None
        else:
            try:
                contract = resource.contract_of(body, referenced=referenced, library=base_library())
                problems = None
                self._document = resource.contract_document(body, referenced)[0]
            except ContractError as exc:
                contract, problems = None, resource.problems_text(exc)
        self._contract = (key, contract, problems)
        return contract, problems

    def _load_run(self, previous: dict[str, Any]) -> None:
        if self.run is not None:
            return
        run_id = previous.get("runId")
        if not run_id:
            return
        run = resume_run(self.parts, str(run_id))
        if run is None:
            log.warning(
                "gate %s/%s: run %s is not in the store; starting afresh", self.namespace, self.name, run_id
            )
            return
        self.run = run
        self.view = run.view()
        self.run_revision = Revision(str(run.meta.get("revision", "")), tuple(run.meta.get("images") or ()))
        decisions = run.take_decisions()
        if decisions:
            self.decision = decisions[-1]
        if run.terminal:
            run.close()

    def _revision(self, contract: Contract | None, generation: Any, meta: dict[str, Any]) -> Revision | None:
        if contract is None:
            return None
        nonce = str((meta.get("annotations") or {}).get(resource.RESTART_ANNOTATION, ""))
        deployment = contract.spec.target.canary.deployment
        if not deployment:
            # No Deployment to follow: a run per spec generation (and per restart annotation).
            return Revision(f"generation-{generation}" + (f"-{nonce}" if nonce else ""), ())
        found = self.revisions.get((self.namespace, deployment))
        if found is None:
            return None
        return Revision(found.digest + (f"-{nonce}" if nonce else ""), found.images)

    def _follow_revision(
        self, contract: Contract, revision: Revision, body: dict[str, Any], now: float
    ) -> status.EventView | None:
        if self.run is not None and self.run_revision.digest == revision.digest:
            self._superseding = None
            return None
        if self.run is not None and not self.run.terminal:
            if self._superseding != revision.digest:
                self._superseding = revision.digest
                self.run.request(
                    approve=False,
                    by="gate operator",
                    reason=f"superseded by revision {revision.digest}",
                    at=now,
                )
            return None
        run_id = _run_id(body, revision.digest)
        self._superseding = None
        existing = self.parts.store.run_detail(run_id)
        if existing is not None:
            run = resume_run(self.parts, run_id)
        else:
            text = json.dumps(self._document, sort_keys=True)
            run = start_run(
                self.parts,
                contract,
                text,
                run_id=run_id,
                meta={
                    "gate": f"{self.namespace}/{self.name}",
                    "revision": revision.digest,
                    "images": list(revision.images),
                },
            )
        if run is None:
            return None
        self.run, self.view, self.decision = run, run.view(), None
        self.run_revision = revision
        # The run is named in the status before anything moves: a replica that dies now is taken over.
        self._write_status(
            {"runId": run.run_id, "revision": revision.digest, "images": list(revision.images)}
        )
        if existing is not None:
            return None
        images = f" ({', '.join(revision.images)})" if revision.images else ""
        return status.EventView(
            "Normal",
            "Started",
            f"run {run.run_id} for revision {revision.digest}{images}: {self.view.steps} steps",
        )

    def _reviewers(self, meta: dict[str, Any], now: float) -> None:
        annotations = meta.get("annotations") or {}
        asked = [
            (key, key == resource.APPROVE_ANNOTATION)
            for key in (resource.APPROVE_ANNOTATION, resource.ABORT_ANNOTATION)
            if key in annotations
        ]
        if not asked:
            return
        for key, approve in asked:
            value = str(annotations.get(key) or "")[:200]
            if self.run is not None and not self.run.terminal:
                self.run.request(
                    approve=approve,
                    by=f"annotation {key}",
                    reason=value or ("approved" if approve else "aborted"),
                    at=now,
                )
                log.info("gate %s/%s: %s (%s)", self.namespace, self.name, key, value)
        # Acted on (or nothing to act on): removed, so it is not acted on twice.
        self.parts.kube.patch(self.ref, {"metadata": {"annotations": {key: None for key, _ in asked}}})

    def _write_status(self, new: dict[str, Any]) -> None:
        if status.same_status(self.written, new):
            return
        now = time.monotonic()
        if (
            status.same_status(self.written, new, ignore=status.CHATTER)
            and now - self._status_at < self.status_every
        ):
            return  # only the last look's numbers changed: written at most every `status_every` s
        new = {**new, "updatedAt": status.rfc3339(time.time())}
        self.parts.kube.patch_status(self.ref, {"status": new})
        self.written = {**(self.written or {}), **new}
        self._status_at = now

    def withdraw(self, timeout: float = 60.0) -> None:
        """The gate was deleted: a run still going is rolled back (traffic to stable) before gate lets go."""
        run = self.run
        if run is None or run.terminal:
            return
        run.request(
            approve=False, by="gate operator", reason="the PerformanceGate was deleted", at=time.time()
        )
        deadline = time.monotonic() + timeout
        while not run.terminal and time.monotonic() < deadline:
            run.advance(time.time())
            if not run.terminal:
                time.sleep(0.2)
        if not run.terminal:
            log.error(
                "gate %s/%s deleted: run %s not rolled back within %gs",
                self.namespace,
                self.name,
                run.run_id,
                timeout,
            )

    def close(self) -> None:
        if self.run is not None:
            self.run.close()


def _run_id(body: dict[str, Any], revision: str) -> str:
    """A run's id from the gate and revision: a replica that restarts finds the same run, never a twin."""
    meta = body.get("metadata") or {}
    seed = f"{meta.get('uid', '')}/{meta.get('namespace', '')}/{meta.get('name', '')}/{revision}"
    return f"{str(meta.get('name', 'gate'))[:40]}-{hashlib.sha256(seed.encode()).hexdigest()[:12]}"
