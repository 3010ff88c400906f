"""Notifications on decisions: a generic JSON webhook, Slack incoming webhooks, PagerDuty Events v2.

Payload builders are pure functions of a message (the engine's ``Notify`` effect with the run's
id, status, step and weight); ``Notifier.send`` posts them with httpx, with a timeout and a few
retries (honouring ``Retry-After``), and never raises: a notifier failure is reported and
recorded, and never blocks a decision.

PagerDuty: a rollback or a hold triggers an alert whose ``dedup_key`` is the run's, so every
event of one run lands on one incident; a promotion or a person's resume resolves it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

log = logging.getLogger(__name__)

ChannelKind = Literal["webhook", "slack", "pagerduty"]
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
ALL_EVENTS = frozenset(
    {"started", "advanced", "held", "resumed", "rolling_back", "rolled_back", "rollback_failed", "promoted"}
)
# Progress through each step is in the run store; people are told what needs or changes attention.
DEFAULT_EVENTS = frozenset(
    {"started", "held", "resumed", "rolling_back", "rolled_back", "rollback_failed", "promoted"}
)
_PD_TRIGGER = {"held", "rolling_back", "rolled_back", "rollback_failed"}
_PD_RESOLVE = {"promoted", "resumed"}
_EMOJI = {
    "started": ":rocket:",
    "advanced": ":arrow_up:",
    "held": ":pause_button:",
    "resumed": ":arrow_forward:",
    "rolling_back": ":rotating_light:",
    "rolled_back": ":leftwards_arrow_with_hook:",
    "rollback_failed": ":sos:",
    "promoted": ":white_check_mark:",
}
MAX_TEXT = 2900  # Slack section text is limited to 3000 characters; PagerDuty summaries to 1024


@dataclass(frozen=True)
class Channel:
    """Where notifications go: a webhook URL, a Slack incoming webhook, or a PagerDuty routing key."""

    name: str
    kind: ChannelKind
    url: str = ""
    routing_key: str = ""  # PagerDuty integration key
    events: frozenset[str] = DEFAULT_EVENTS
    headers: Mapping[str, str] = field(default_factory=dict)
    source: str = "gate"  # PagerDuty payload.source: the gate's host or the service's name

    def wants(self, event: str) -> bool:
        """Whether this channel is told about ``event``."""
        if self.kind == "pagerduty":
            # An incident is opened by what needs a person and closed by what ends the need.
            return event in _PD_TRIGGER | _PD_RESOLVE
        return event in self.events


# ------------------------------------------------------------------------------------- payloads


def _title(message: Mapping[str, Any]) -> str:
    service = message.get("service") or message.get("contract") or "canary"
    words = {
        "started": "rollout started",
        "advanced": "step passed",
        "held": "rollout held — needs a person",
        "resumed": "rollout resumed",
        "rolling_back": "rolling back",
        "rolled_back": "rolled back",
        "rollback_failed": "ROLLBACK FAILED — traffic may still reach the canary",
        "promoted": "promoted",
    }
    return f"gate: {service} {words.get(str(message.get('event')), str(message.get('event')))}"


def webhook_payload(message: Mapping[str, Any]) -> dict[str, Any]:
    """The generic webhook body: the message itself, versioned."""
    return {"source": "gate", "version": 1, "title": _title(message), **dict(message)}


def slack_payload(message: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook body with blocks (and ``text`` as the notification fallback)."""
    event = str(message.get("event", ""))
    title = _title(message)
    summary = str(message.get("summary", ""))[:MAX_TEXT]
    facts = (
        f"*run* `{message.get('run_id', '')}` · *step* {message.get('step', 0)}/{message.get('steps', 0)}"
        f" · *canary weight* {message.get('weight', 0)}% · *status* {message.get('status', '')}"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{_EMOJI.get(event, '')} {summary}".strip()}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": facts}]},
    ]
    if message.get("url"):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open run"},
                        "url": message["url"],
                    }
                ],
            }
        )
    return {"text": f"{title}: {summary}"[:MAX_TEXT], "blocks": blocks}


def pagerduty_payload(message: Mapping[str, Any], routing_key: str, source: str = "gate") -> dict[str, Any]:
    """A PagerDuty Events API v2 enqueue body: trigger on rollback/hold, resolve on promote/resume."""
    event = str(message.get("event", ""))
    dedup_key = f"gate/{message.get('run_id', '')}"
    if event in _PD_RESOLVE:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    severity = {"critical": "critical", "warning": "warning"}.get(str(message.get("severity")), "info")
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": f"{_title(message)}: {message.get('summary', '')}"[:1024],
            "severity": severity,
            "source": source,
            "component": str(message.get("service") or message.get("contract") or ""),
            "group": "gate",
            "class": event,
            "custom_details": {
                k: message[k] for k in ("run_id", "step", "steps", "weight", "status", "key") if k in message
            },
        },
    }
    if message.get("url"):
        body["links"] = [{"href": message["url"], "text": "gate run"}]
    return body


# ------------------------------------------------------------------------------------- notifier


class Notifier:
    """Sends messages to channels; never raises."""

    def __init__(
        self,
        channels: list[Channel],
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"notification channel names must be unique: {names}")
        self._channels = {c.name: c for c in channels}
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._transport = transport
        self._defaults = dict(defaults or {})  # e.g. service, contract, url: added to every message

    def channels(self) -> list[str]:
        """The channel names."""
        return list(self._channels)

    def payload(self, channel: str, message: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """The URL and body for ``message`` on ``channel``; None when the channel skips this event."""
        ch = self._channels[channel]
        full = {**self._defaults, **dict(message)}
        if not ch.wants(str(full.get("event", ""))):
            return None
        if ch.kind == "slack":
            return ch.url, slack_payload(full)
        if ch.kind == "pagerduty":
            return ch.url or PAGERDUTY_URL, pagerduty_payload(full, ch.routing_key, ch.source)
        return ch.url, webhook_payload(full)

    def send(self, channel: str, message: dict[str, Any]) -> tuple[bool, dict[str, Any], str]:
        """Send one message on one channel: (ok, payload sent, error). A skipped event is ok."""
        try:
            built = self.payload(channel, message)
        except Exception as exc:  # a bad message must not stop the engine
            return False, {}, f"could not build the payload: {exc}"
        if built is None:
            return True, {}, ""
        url, body = built
        headers = {"User-Agent": "gate", **dict(self._channels[channel].headers)}
        error = ""
        with httpx.Client(timeout=self.timeout, transport=self._transport) as client:
            for attempt in range(self.retries):
                delay = self.backoff * (2**attempt)
                try:
                    response = client.post(url, json=body, headers=headers)
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                else:
                    if response.status_code < 300:
                        return True, body, ""
                    error = f"HTTP {response.status_code}: {response.text[:200]}"
                    if response.status_code != 429 and response.status_code < 500:
                        break  # the receiver refuses this payload; retrying will not change that
                    delay = max(delay, _retry_after(response, self.max_retry_after))
                if attempt + 1 < self.retries:
                    self._sleep(delay)
        log.warning("notification on %s failed: %s", channel, error)
        return False, body, error


def _retry_after(response: httpx.Response, cap: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return min(cap, max(0.0, float(value)))
    except ValueError:
        return 0.0


# ------------------------------------------------------------------------------- from a contract


SecretResolver = Callable[[Any], str | None]


def env_secret(secret: Any) -> str | None:
    """Resolve a contract ``Secret`` from the environment (``env: NAME``); a Kubernetes Secret
    (``secret: name``) is read from ``GATE_SECRET_<NAME>`` outside a cluster (dashes as underscores)."""
    env = getattr(secret, "env", None)
    if env:
        return os.environ.get(str(env))
    name = getattr(secret, "secret", None)
    if name:
        return os.environ.get("GATE_SECRET_" + str(name).upper().replace("-", "_").replace(".", "_"))
    return None


def channels_from_contract(
    notify: list[Any], *, resolve: SecretResolver = env_secret, source: str = "gate"
) -> tuple[list[Channel], list[str]]:
    """Channels for a contract's ``spec.policy.notify`` entries, and a problem per entry whose
    credential cannot be found (that channel is left out; the rollout is not blocked by it)."""
    channels: list[Channel] = []
    problems: list[str] = []
    for i, entry in enumerate(notify):
        where = f"spec.policy.notify[{i}]"
        if getattr(entry, "webhook", None) is not None and isinstance(entry.webhook, str):
            channels.append(Channel(f"webhook-{i}", "webhook", url=entry.webhook, events=ALL_EVENTS))
        elif getattr(entry, "slack", None) is not None:
            url = resolve(entry.slack.webhook)
            if not url:
                problems.append(f"{where}.slack.webhook: the webhook URL is not set (see docs/ci.md)")
                continue
            channels.append(Channel(f"slack-{i}", "slack", url=url))
        elif getattr(entry, "pagerduty", None) is not None:
            key = resolve(entry.pagerduty.routing_key)
            if not key:
                problems.append(f"{where}.pagerduty.routingKey: the routing key is not set (see docs/ci.md)")
                continue
            channels.append(Channel(f"pagerduty-{i}", "pagerduty", routing_key=key, source=source))
        else:
            problems.append(f"{where}: unknown notification kind")
    return channels, problems
