{{/* Names, labels and the pieces the operator and the dashboard share. */}}

{{- define "gate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "gate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "gate.selector" -}}
app.kubernetes.io/name: {{ include "gate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "gate.storeClaim" -}}
{{- default (printf "%s-store" (include "gate.fullname" .)) .Values.store.sqlite.existingClaim -}}
{{- end -}}

{{/* The store URL as GATE_STORE: a file on the store volume, or the Secret's PostgreSQL URL. */}}
{{- define "gate.storeEnv" -}}
{{- if eq .Values.store.type "postgres" }}
- name: GATE_STORE
  valueFrom:
    secretKeyRef:
      name: {{ required "store.postgres.secretName is required with store.type=postgres" .Values.store.postgres.secretName }}
      key: {{ .Values.store.postgres.key }}
{{- else }}
- name: GATE_STORE
  value: sqlite:////var/lib/gate/store/runs.sqlite
{{- end }}
{{- end -}}

{{/* Settings every gate process in the release reads (gate.settings.Settings, prefix GATE_). */}}
{{- define "gate.commonEnv" -}}
{{- include "gate.storeEnv" . }}
- name: GATE_WORKDIR
  value: /var/lib/gate/work
- name: GATE_PROMETHEUS_URL
  value: {{ .Values.prometheus.url | quote }}
- name: GATE_PROMETHEUS_CONCURRENCY
  value: {{ .Values.prometheus.concurrency | quote }}
- name: GATE_KUBE_QPS
  value: {{ .Values.kubeApi.qps | quote }}
- name: GATE_KUBE_BURST
  value: {{ .Values.kubeApi.burst | quote }}
- name: HOME
  value: /tmp
{{- end -}}

{{- define "gate.writableMounts" -}}
- name: tmp
  mountPath: /tmp
- name: work
  mountPath: /var/lib/gate/work
{{- if eq .Values.store.type "sqlite" }}
- name: store
  mountPath: /var/lib/gate/store
{{- end }}
{{- end -}}

{{/* The dashboard container: in the operator's pod (sqlite) or its own Deployment (postgres). */}}
{{- define "gate.dashboardContainer" -}}
- name: dashboard
  image: {{ include "gate.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - dashboard
    - --host
    - 0.0.0.0
    - --port
    - {{ .Values.dashboard.port | quote }}
    {{- if not .Values.dashboard.publicRead }}
    - --private
    {{- end }}
    {{- if .Values.dashboard.kubeAuth }}
    - --kube-auth
    {{- end }}
    {{- range .Values.dashboard.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    {{- include "gate.commonEnv" . | nindent 4 }}
    {{- if .Values.dashboard.tokensSecret.name }}
    - name: GATE_DASHBOARD_TOKENS_FILE
      value: /etc/gate/dashboard/{{ .Values.dashboard.tokensSecret.key }}
    {{- end }}
    {{- if .Values.dashboard.proxyHeader }}
    - name: GATE_DASHBOARD_PROXY_HEADER
      value: {{ .Values.dashboard.proxyHeader | quote }}
    {{- end }}
    {{- if .Values.integrations.enabled }}
    - name: GATE_INTEGRATIONS_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ .Values.integrations.tokenSecret.name }}
          key: {{ .Values.integrations.tokenSecret.key }}
    - name: GATE_INTEGRATIONS_CONTRACTS
      value: /etc/gate/contracts
    - name: GATE_INTEGRATIONS_NAMESPACES
      value: {{ .Values.integrations.namespaces | quote }}
    {{- end }}
    {{- range $name, $value := .Values.dashboard.env }}
    - name: {{ $name }}
      value: {{ $value | quote }}
    {{- end }}
  ports:
    - name: http
      containerPort: {{ .Values.dashboard.port }}
      protocol: TCP
  livenessProbe:
    httpGet: {path: /healthz, port: http}
    periodSeconds: 10
    failureThreshold: 3
  readinessProbe:
    httpGet: {path: /healthz, port: http}
    periodSeconds: 5
  resources:
    {{- toYaml .Values.dashboard.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "gate.writableMounts" . | nindent 4 }}
    {{- if .Values.dashboard.tokensSecret.name }}
    - name: dashboard-tokens
      mountPath: /etc/gate/dashboard
      readOnly: true
    {{- end }}
    {{- if and .Values.integrations.enabled .Values.integrations.contractsConfigMap }}
    - name: contracts
      mountPath: /etc/gate/contracts
      readOnly: true
    {{- end }}
{{- end -}}

{{- define "gate.dashboardVolumes" -}}
{{- if .Values.dashboard.tokensSecret.name }}
- name: dashboard-tokens
  secret:
    secretName: {{ .Values.dashboard.tokensSecret.name }}
    defaultMode: 0440
{{- end }}
{{- if and .Values.integrations.enabled .Values.integrations.contractsConfigMap }}
- name: contracts
  configMap:
    name: {{ .Values.integrations.contractsConfigMap }}
{{- end }}
{{- end -}}
