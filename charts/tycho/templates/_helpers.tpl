{{/*
Names, labels and the derived settings shared by the templates.
*/}}

{{- define "tycho.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name prefix of every object: release name (+ "-tycho" unless already in it). */}}
{{- define "tycho.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tycho.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tycho.labels" -}}
helm.sh/chart: {{ include "tycho.chart" . }}
app.kubernetes.io/name: {{ include "tycho.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tycho
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the operator pods (immutable: never add to them). */}}
{{- define "tycho.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tycho.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "tycho.minio.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tycho.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: minio
{{- end }}

{{- define "tycho.board.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tycho.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: board
{{- end }}

{{- define "tycho.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "tycho.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* TYCHO_STAGE_SERVICE_ACCOUNT */}}
{{- define "tycho.stageServiceAccount" -}}
{{- if .Values.stage.serviceAccount.create }}
{{- default (printf "%s-stage" (include "tycho.fullname" .)) .Values.stage.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.stage.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Does the chart create the storage Secret? */}}
{{- define "tycho.createStorageSecret" -}}
{{- if and (not .Values.storage.existingSecret) (or .Values.storage.secret.create .Values.minio.enabled) }}true{{- end }}
{{- end }}

{{/* TYCHO_STORE_SECRET: the storage Secret's name, or empty when there is none. */}}
{{- define "tycho.storageSecret" -}}
{{- if .Values.storage.existingSecret }}
{{- .Values.storage.existingSecret }}
{{- else if include "tycho.createStorageSecret" . }}
{{- printf "%s-storage" (include "tycho.fullname" .) }}
{{- end }}
{{- end }}

{{- define "tycho.minio.fullname" -}}
{{- printf "%s-minio" (include "tycho.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tycho.minio.endpoint" -}}
{{- printf "http://%s.%s.svc:9000" (include "tycho.minio.fullname" .) .Release.Namespace }}
{{- end }}

{{/* TYCHO_DEFAULT_STORE */}}
{{- define "tycho.defaultStore" -}}
{{- if .Values.storage.defaultUrl }}
{{- .Values.storage.defaultUrl }}
{{- else if .Values.minio.enabled }}
{{- printf "s3://%s/store" .Values.minio.bucket }}
{{- end }}
{{- end }}

{{/* TYCHO_PEERING */}}
{{- define "tycho.peering" -}}
{{- if .Values.peering.enabled }}{{ .Values.peering.name }}{{ end }}
{{- end }}

{{/* Cluster-wide install? (no watchNamespaces) */}}
{{- define "tycho.clusterWide" -}}
{{- if not .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/*
Namespaces that get the per-namespace objects stage Jobs need (stage ServiceAccount,
created storage Secret): watched namespaces + extraPipelineNamespaces (+ the release
namespace when cluster-wide). Rendered as a JSON list; use with fromJsonArray.
*/}}
{{- define "tycho.pipelineNamespaces" -}}
{{- $list := list }}
{{- if include "tycho.clusterWide" . }}
{{- $list = append $list .Release.Namespace }}
{{- end }}
{{- range (concat .Values.watchNamespaces .Values.extraPipelineNamespaces) }}
{{- $list = append $list . }}
{{- end }}
{{- $list | uniq | toJson }}
{{- end }}

{{/* Operator image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "tycho.operatorImage" -}}
{{- $img := .Values.operator.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/* The MinIO root password: from values, else the existing Secret's, else a new random one. */}}
{{- define "tycho.minio.password" -}}
{{- if .Values.minio.rootPassword }}
{{- .Values.minio.rootPassword }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "tycho.storageSecret" .) }}
{{- if and $existing $existing.data (index $existing.data "AWS_SECRET_ACCESS_KEY") }}
{{- index $existing.data "AWS_SECRET_ACCESS_KEY" | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}
{{- end }}
