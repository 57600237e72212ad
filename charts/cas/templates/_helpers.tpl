{{/* The chart's name: the label app.kubernetes.io/name. */}}
{{- define "cas.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The objects' name: the release name, with the chart's name added unless it holds it. */}}
{{- define "cas.fullname" -}}
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

{{- define "cas.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cas.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cas.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cas.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: cas
{{- end }}

{{- define "cas.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The controller's label-safe form of a name (controller/main.c label_safe): lower case,
     [a-z0-9.] kept, others '-', cut at the given length, '-' and '.' trimmed at both ends. */}}
{{- define "cas.labelSafe" -}}
{{- $s := regexReplaceAll "[^a-z0-9.]" (index . 0 | lower) "-" | trunc (index . 1) | trimAll "-." }}
{{- $s | default "cas" }}
{{- end }}

{{/* The controller's node label: cas-registered-<casName>.<namespace> (63 characters at most). */}}
{{- define "cas.registeredLabel" -}}
{{- $cas := include "cas.labelSafe" (list (.Values.casName | default .Release.Name) 40) }}
{{- $ns := .Values.backup.controllerNamespace | default .Release.Namespace }}
{{- include "cas.labelSafe" (list (printf "cas-registered-%s.%s" $cas $ns) 63) }}
{{- end }}

{{/* policy/v1 where the cluster serves it (Kubernetes >= 1.21), else policy/v1beta1. helm template
     without --kube-version/--api-versions assumes its default capabilities. */}}
{{- define "cas.pdbApiVersion" -}}
{{- $v1 := or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (.Capabilities.APIVersions.Has "policy/v1") }}
{{- if and $v1 (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end }}
{{- end }}

{{/* The pod's affinity: the user's, with the registered-node rule added to every node selector
     term when backup.requireRegisteredNode. */}}
{{- define "cas.affinity" -}}
{{- $aff := deepCopy (.Values.affinity | default dict) }}
{{- if .Values.backup.requireRegisteredNode }}
{{- $expr := dict "key" (include "cas.registeredLabel" .) "operator" "In" "values" (list "true") }}
{{- $na := get $aff "nodeAffinity" | default dict }}
{{- $req := get $na "requiredDuringSchedulingIgnoredDuringExecution" | default dict }}
{{- $terms := get $req "nodeSelectorTerms" | default (list dict) }}
{{- $new := list }}
{{- range $terms }}
{{- $t := deepCopy . }}
{{- $_ := set $t "matchExpressions" (append (get $t "matchExpressions" | default list) $expr) }}
{{- $new = append $new $t }}
{{- end }}
{{- $_ := set $req "nodeSelectorTerms" $new }}
{{- $_ := set $na "requiredDuringSchedulingIgnoredDuringExecution" $req }}
{{- $_ := set $aff "nodeAffinity" $na }}
{{- end }}
{{- if $aff }}
{{- toYaml $aff }}
{{- end }}
{{- end }}
