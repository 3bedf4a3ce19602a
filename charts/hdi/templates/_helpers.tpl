{{/* Names, labels and shared pieces of the hdi chart. */}}

{{- define "hdi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object: the release name, plus the chart's name unless it is in it. */}}
{{- define "hdi.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hdi.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; pass (dict "root" $ "component" "…"). */}}
{{- define "hdi.labels" -}}
helm.sh/chart: {{ include "hdi.chart" .root }}
{{ include "hdi.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: hdi
{{- end }}

{{/* What selects a component's pods; pass (dict "root" $ "component" "…"). */}}
{{- define "hdi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hdi.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "hdi.controlPlane.fullname" -}}
{{- printf "%s-control-plane" (include "hdi.fullname" .) }}
{{- end }}

{{- define "hdi.operator.fullname" -}}
{{- printf "%s-operator" (include "hdi.fullname" .) }}
{{- end }}

{{- define "hdi.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "hdi.fullname" .) }}
{{- end }}

{{/* The image of every hdi process: repository:tag, the tag defaulting to appVersion. */}}
{{- define "hdi.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the admin and agent tokens. */}}
{{- define "hdi.tokensSecret" -}}
{{- default (printf "%s-tokens" (include "hdi.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/* Whether the bundled PostgreSQL runs. */}}
{{- define "hdi.postgresql.enabled" -}}
{{- if not .Values.database.externalUrl.secretName }}true{{ end }}
{{- end }}

{{/* The Secret holding the bundled PostgreSQL's password (key `password`). */}}
{{- define "hdi.postgresql.secret" -}}
{{- default (include "hdi.postgresql.fullname" .) .Values.database.postgresql.existingSecret }}
{{- end }}

{{/*
DATABASE_URL for the control plane and the operator: from the external Secret, or built for the
bundled PostgreSQL from its password (Kubernetes expands $(PGPASSWORD), defined just before; the
generated password is alphanumeric, an existing one must be URL-safe).
*/}}
{{- define "hdi.databaseEnv" -}}
{{- if include "hdi.postgresql.enabled" . }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "hdi.postgresql.secret" . }}
      key: password
- name: DATABASE_URL
  value: {{ printf "postgres://%s:$(PGPASSWORD)@%s.%s.svc:5432/%s" .Values.database.postgresql.username (include "hdi.postgresql.fullname" .) .Release.Namespace .Values.database.postgresql.database | quote }}
{{- else }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.externalUrl.secretName }}
      key: {{ .Values.database.externalUrl.key }}
{{- end }}
{{- end }}

{{/* The containers' security context: non-root, read-only root file system, no capabilities. */}}
{{- define "hdi.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* A secret value kept across upgrades: the existing Secret's key, else a new random one.
Pass (dict "root" $ "name" secretName "key" key "length" n). */}}
{{- define "hdi.keptSecret" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- index $existing.data .key }}
{{- else }}
{{- randAlphaNum .length | b64enc }}
{{- end }}
{{- end }}
