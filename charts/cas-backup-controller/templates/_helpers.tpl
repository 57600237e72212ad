{{/* The chart's name: the label app.kubernetes.io/name. */}}
{{- define "cbc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The objects' name: the release name, with the chart's name added unless it holds it. */}}
{{- define "cbc.fullname" -}}
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

{{- define "cbc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cbc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cbc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cbc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: backup-controller
{{- end }}

{{- define "cbc.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "cbc.backupImage" -}}
{{- .Values.backup.image | default (printf "custos/cas:%s" .Chart.AppVersion) }}
{{- end }}

{{- define "cbc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "cbc.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{- define "cbc.lasNamespace" -}}
{{- .Values.las.namespace | default .Release.Namespace }}
{{- end }}

{{/* RBAC objects' names: cluster-scoped ones carry the namespace, so two releases of the same name
     in two namespaces do not share them. */}}
{{- define "cbc.clusterRoleName" -}}
{{- printf "%s-%s" (include "cbc.fullname" .) .Release.Namespace | trunc 253 }}
{{- end }}

{{- define "cbc.casRunLasAddr" -}}
{{- .Values.las.casRunSocketPath | default .Values.las.socketPath }}
{{- end }}

{{- define "cbc.configDir" -}}/run/custos-cli{{- end }}
