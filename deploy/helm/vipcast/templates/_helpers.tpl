{{- define "vipcast.labels" -}}
app.kubernetes.io/name: vipcast
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "vipcast.selector" -}}
app.kubernetes.io/name: vipcast
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vipcast.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "vipcast.fullname" -}}
{{- if eq .Release.Name "vipcast" -}}vipcast{{- else -}}{{ printf "%s-vipcast" .Release.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "vipcast.webhookService" -}}
{{ include "vipcast.fullname" . }}-webhook
{{- end -}}

{{- define "vipcast.crdKinds" -}}
[ipaddresspools, bgppeers, bgpadvertisements, l2advertisements, bfdprofiles, communities]
{{- end -}}
