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
[ipaddresspools, bgppeers, bgpadvertisements, l2advertisements, bfdprofiles, communities, loadbalancerproviders, cnispeakers]
{{- end -}}

{{/* The Secrets (release namespace) BGPPeers may name in passwordSecret: those of the peers
     in the values plus bgpPasswordSecrets; comma-separated, sorted (empty: none). */}}
{{- define "vipcast.passwordSecrets" -}}
{{- $names := list -}}
{{- range .Values.peers -}}
{{- with (default dict .spec).passwordSecret -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- end -}}
{{- range .Values.bgpPasswordSecrets -}}
{{- $names = append $names . -}}
{{- end -}}
{{- $names | uniq | sortAlpha | join "," -}}
{{- end -}}

{{/* vipcast's own namespace, from the Downward API (never a hard-coded name) */}}
{{- define "vipcast.namespaceEnv" -}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
{{- end -}}

{{/* Replicas of a Deployment on different nodes (preferred) and zones: one node's loss never
     takes every replica. Args: dict ctx, component. */}}
{{- define "vipcast.spread" -}}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "vipcast.selector" .ctx | nindent 14 }}
              app.kubernetes.io/component: {{ .component }}
{{- end -}}
