{{/*
Helpers of the Weft chart. Object names are fixed by the contract (the control plane and the
sidecars find them by name), so there is no fullname helper: one installation per cluster.
*/}}

{{/* Chart label value: name-version, as `helm create` does. */}}
{{- define "weft.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of the control-plane pods (immutable in a Deployment: never add to them). */}}
{{- define "weft.selectorLabels" -}}
app.kubernetes.io/name: weft-control-plane
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The standard labels every object of the chart carries. */}}
{{- define "weft.labels" -}}
helm.sh/chart: {{ include "weft.chart" . }}
{{ include "weft.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: control-plane
app.kubernetes.io/part-of: weft
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The control plane's image: repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "weft.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Where sidecars reach the control plane: injection.xdsAddress, or the Service in the release namespace. */}}
{{- define "weft.xdsAddress" -}}
{{- .Values.injection.xdsAddress | default (printf "weft-control-plane.%s.svc:15012" .Release.Namespace) -}}
{{- end -}}

{{/*
The caBundle of one webhook as the control plane (leader) last wrote it, read from the live
object with `lookup`, so that `helm upgrade` carries it over instead of blanking it and breaking
admission until the leader writes it again. Empty on install, under `helm template` and
`--dry-run` (lookup returns nothing without a cluster). Call with
(list "MutatingWebhookConfiguration" "weft-sidecar-injector" "sidecar-injector.weft.dev").
*/}}
{{- define "weft.liveCaBundle" -}}
{{- $live := lookup "admissionregistration.k8s.io/v1" (index . 0) "" (index . 1) -}}
{{- $ca := "" -}}
{{- range (($live | default dict).webhooks | default list) -}}
{{- if eq .name (index $ 2) -}}
{{- $ca = (.clientConfig | default dict).caBundle | default "" -}}
{{- end -}}
{{- end -}}
{{- $ca -}}
{{- end -}}
