{{/* The image reference. */}}
{{- define "serin.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Labels on every object; $component is controller or loadtester. */}}
{{- define "serin.labels" -}}
app.kubernetes.io/name: {{ if eq .component "loadtester" }}serin-loadtester{{ else }}serin{{ end }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: serin
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ .root.Chart.Name }}-{{ .root.Chart.Version }}
{{- end -}}

{{/* Selector labels. */}}
{{- define "serin.selector" -}}
app.kubernetes.io/name: {{ if eq .component "loadtester" }}serin-loadtester{{ else }}serin{{ end }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The restricted Pod security context shared by both Deployments. */}}
{{- define "serin.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "serin.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}
