{{/*
What each part of gate calls on the Kubernetes API, and nothing else. tests/helm/test_rbac.py reads
gate's code (the Kubernetes calls of gate/drivers/) and fails when a block here differs from it.
*/}}
{{- define "gate.rbac.catalog" -}}
routers:
  # gate/drivers/routers/gateway_api.py: read-modify-write of the HTTPRoute's backendRefs weights;
  # gate/drivers/preflight.py: the backendRefs' Services exist.
  gateway-api:
    - {apiGroups: [gateway.networking.k8s.io], resources: [httproutes], verbs: [get, patch]}
    - {apiGroups: [""], resources: [services], verbs: [get]}
  # gate/drivers/routers/istio.py: read-modify-write of the VirtualService's route weights and mirror.
  istio:
    - {apiGroups: [networking.istio.io], resources: [virtualservices], verbs: [get, patch]}
    - {apiGroups: [""], resources: [services], verbs: [get]}
  # gate/drivers/routers/ingress_nginx.py: the canary Ingress is created, annotated and removed.
  ingress-nginx:
    - {apiGroups: [networking.k8s.io], resources: [ingresses], verbs: [create, delete, get, patch]}
    - {apiGroups: [""], resources: [services], verbs: [get]}
  # gate/drivers/routers/deployment.py: replica counts of the stable and canary Deployments.
  deployment:
    - {apiGroups: [apps], resources: [deployments], verbs: [get, patch]}
# gate/drivers/routers/promotion.py: promotion modes copy / external hand the canary over to the
# stable Deployment (read both; copy also patches them).
promotion:
  - {apiGroups: [apps], resources: [deployments], verbs: [get, patch]}
chaos:
  # gate/drivers/chaos/istio.py (chaosk8s.crd): a fault block on the VirtualService, and its removal.
  istio-fault:
    - {apiGroups: [networking.istio.io], resources: [virtualservices], verbs: [get, patch]}
  # gate/drivers/chaos/scale.py (chaosk8s.deployment): read the replica count, scale, scale back.
  deployment-scale:
    - {apiGroups: [apps], resources: [deployments], verbs: [get, patch]}
  # chaosk8s.pod.actions.terminate_pods: list the pods by label, delete some.
  pod-kill:
    - {apiGroups: [""], resources: [pods], verbs: [delete, list]}
# gate/drivers/load/cluster.py, load at scale (loadJobs.enabled): the load's ConfigMap, Service and
# Jobs are created (KubeClient.create reads the object back when the answer is empty: get), listed by
# the run's label and deleted; the master's pod is listed and its log followed.
load:
  - {apiGroups: [""], resources: [configmaps], verbs: [create, delete, get, list]}
  - {apiGroups: [""], resources: [services], verbs: [create, delete, get, list]}
  - {apiGroups: [batch], resources: [jobs], verbs: [create, delete, get, list]}
  - {apiGroups: [""], resources: [pods], verbs: [list]}
  - {apiGroups: [""], resources: [pods/log], verbs: [get]}
operator:
  # kopf watches and patches the gates (status through its subresource), posts Events, and gate
  # reads the canary Deployment's revision and the contracts a gate references.
  namespaced:
    - {apiGroups: [perfgate.dev], resources: [performancegates], verbs: [get, list, patch, watch]}
    - {apiGroups: [perfgate.dev], resources: [performancegates/status], verbs: [get, patch]}
    - {apiGroups: [perfgate.dev], resources: [performancecontracts], verbs: [get, list, watch]}
    - {apiGroups: [""], resources: [configmaps], verbs: [get]}
    - {apiGroups: [apps], resources: [deployments], verbs: [get, list, watch]}
    - {apiGroups: [""], resources: [events], verbs: [create]}
  # kopf discovers its resources through the CRDs; cluster-wide it also follows namespaces.
  cluster:
    - {apiGroups: [apiextensions.k8s.io], resources: [customresourcedefinitions], verbs: [get, list, watch]}
  clusterwide:
    - {apiGroups: [""], resources: [namespaces], verbs: [get, list, watch]}
  # kopf peering between replicas (only with operator.replicas > 1).
  peering-cluster:
    - {apiGroups: [kopf.dev], resources: [clusterkopfpeerings], verbs: [get, list, patch, watch]}
  peering-namespaced:
    - {apiGroups: [kopf.dev], resources: [kopfpeerings], verbs: [get, list, patch, watch]}
dashboard:
  # Reviewers' service-account tokens: TokenReview, then SubjectAccessReview (may they patch the gate?).
  cluster:
    - {apiGroups: [authentication.k8s.io], resources: [tokenreviews], verbs: [create]}
    - {apiGroups: [authorization.k8s.io], resources: [subjectaccessreviews], verbs: [create]}
{{- end -}}

{{/* The rules of the namespaced part: the operator's, and those of the chosen routers and chaos actions. */}}
{{- define "gate.rbac.namespacedRules" -}}
{{- $catalog := fromYaml (include "gate.rbac.catalog" .) -}}
{{- $rules := list -}}
{{- range $catalog.operator.namespaced }}{{ $rules = append $rules . }}{{ end -}}
{{- range .Values.rbac.routers }}
{{- $block := get $catalog.routers . -}}
{{- if not $block }}{{ fail (printf "rbac.routers: unknown router %q (known: gateway-api, istio, ingress-nginx, deployment)" .) }}{{ end -}}
{{- range $block }}{{ $rules = append $rules . }}{{ end -}}
{{- end -}}
{{- range .Values.rbac.chaos }}
{{- $block := get $catalog.chaos . -}}
{{- if not $block }}{{ fail (printf "rbac.chaos: unknown chaos action %q (known: istio-fault, deployment-scale, pod-kill)" .) }}{{ end -}}
{{- range $block }}{{ $rules = append $rules . }}{{ end -}}
{{- end -}}
{{- if .Values.rbac.promotion }}
{{- range $catalog.promotion }}{{ $rules = append $rules . }}{{ end -}}
{{- end -}}
{{- if .Values.loadJobs.enabled }}
{{- range $catalog.load }}{{ $rules = append $rules . }}{{ end -}}
{{- end -}}
{{- if gt (int .Values.operator.replicas) 1 -}}
{{- if not .Values.watchNamespaces }}
{{- range (get $catalog.operator "peering-cluster") }}{{ $rules = append $rules . }}{{ end -}}
{{- else }}
{{- range (get $catalog.operator "peering-namespaced") }}{{ $rules = append $rules . }}{{ end -}}
{{- end -}}
{{- end -}}
{{- range .Values.rbac.extraRules }}{{ $rules = append $rules . }}{{ end -}}
{{- toYaml $rules -}}
{{- end -}}

{{/* The rules only a ClusterRole can hold. */}}
{{- define "gate.rbac.clusterRules" -}}
{{- $catalog := fromYaml (include "gate.rbac.catalog" .) -}}
{{- $rules := list -}}
{{- range $catalog.operator.cluster }}{{ $rules = append $rules . }}{{ end -}}
{{- if not .Values.watchNamespaces }}
{{- range $catalog.operator.clusterwide }}{{ $rules = append $rules . }}{{ end -}}
{{- end -}}
{{- if and .Values.dashboard.enabled .Values.dashboard.kubeAuth }}
{{- range $catalog.dashboard.cluster }}{{ $rules = append $rules . }}{{ end -}}
{{- end -}}
{{- toYaml $rules -}}
{{- end -}}
