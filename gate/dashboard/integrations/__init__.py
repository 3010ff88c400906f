"""Drop-in endpoints for teams already on Flagger or Argo Rollouts: gate's check and judge behind their
webhook and web-metric calls (docs/integrations.md).

Mount on the dashboard with ``app.include_router(integrations_router())``, or serve alone with
``create_integrations_app()``. Nothing here decides by itself: every answer comes from a real
``gate check`` of the caller's revision (``gate.compose.check.run_check``).
"""

from gate.dashboard.integrations.app import build, create_integrations_app, integrations_router
from gate.dashboard.integrations.settings import IntegrationsSettings

__all__ = ["IntegrationsSettings", "build", "create_integrations_app", "integrations_router"]
