{{/* The name of every object: the release name, with the chart's when they differ. */}}
{{- define "scribe.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "scribe.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "scribe.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "scribe.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "scribe.tlsSecret" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "scribe.fullname" .)) -}}
{{- end -}}

{{/* Where the Secret's certificates are mounted, read-only. */}}
{{- define "scribe.tlsDir" -}}/etc/scribe/tls{{- end -}}

{{/* The settings a process takes from its environment (SCRIBE_<KEY>); the bus itself
is given by --bus. Called with the root context and the port of the process's
endpoints: given as SCRIBE_LISTEN, so that the healthcheck script, which reads
the settings, asks the port the process serves. */}}
{{- define "scribe.env" -}}
{{- $ := .root -}}
{{- $tls := $.Values.tls -}}
{{- $dir := include "scribe.tlsDir" $ -}}
- name: SCRIBE_LISTEN
  value: "0.0.0.0:{{ .port }}"
{{- if $.Values.journal.secretName }}
- name: SCRIBE_JOURNAL_URL
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.journal.secretName }}
      key: {{ $.Values.journal.secretKey }}
{{- end }}
{{- if and $tls.enabled $tls.bus }}
- name: SCRIBE_BUS_CERT
  value: {{ $dir }}/client.pem
- name: SCRIBE_BUS_KEY
  value: {{ $dir }}/client-key.pem
- name: SCRIBE_BUS_CA
  value: {{ $dir }}/ca.pem
{{- end }}
{{- if and $tls.enabled $tls.https }}
- name: SCRIBE_TLS_CERT
  value: {{ $dir }}/server.pem
- name: SCRIBE_TLS_KEY
  value: {{ $dir }}/server-key.pem
{{- if $tls.clientAuth }}
- name: SCRIBE_TLS_CLIENT_CA
  value: {{ $dir }}/ca.pem
{{- end }}
{{- end }}
{{- end -}}

{{/* The volumes of every pod: the repository, the ConfigMap, the certificates, /tmp. */}}
{{- define "scribe.volumes" -}}
- name: repository
  persistentVolumeClaim:
    claimName: {{ .Values.repository.claimName }}
- name: config
  configMap:
    name: {{ include "scribe.fullname" . }}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "scribe.tlsSecret" . }}
    defaultMode: 288  # 0440: the pod's group (fsGroup) reads, nobody writes
{{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "scribe.volumeMounts" -}}
- name: repository
  mountPath: {{ .Values.repository.mountPath }}
- name: config
  mountPath: {{ .Values.repository.mountPath }}/scribe.yaml
  subPath: scribe.yaml
  readOnly: true
- name: config
  mountPath: /etc/scribe/config
  readOnly: true
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ include "scribe.tlsDir" . }}
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* A probe of a process's endpoints: HTTP(S) GET, or the healthcheck script when
the endpoints want a client certificate, which the kubelet cannot present. */}}
{{- define "scribe.probe" -}}
{{- $ := index . 0 -}}
{{- $path := index . 1 -}}
{{- if and $.Values.tls.enabled $.Values.tls.https $.Values.tls.clientAuth -}}
exec:
  command:
    - python
    - /usr/local/lib/scribe/healthcheck.py
    - {{ $path }}
    - --root={{ $.Values.repository.mountPath }}
    - --cert={{ include "scribe.tlsDir" $ }}/client.pem
    - --key={{ include "scribe.tlsDir" $ }}/client-key.pem
{{- else -}}
httpGet:
  path: {{ $path }}
  port: ops
  scheme: {{ if and $.Values.tls.enabled $.Values.tls.https }}HTTPS{{ else }}HTTP{{ end }}
{{- end -}}
{{- end -}}
