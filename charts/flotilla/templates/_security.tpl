{{/* Flotilla's own image runs as the non-root user 10001 made in the Dockerfile. */}}
{{- define "flotilla.gatewaySecurity" -}}
pod:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile: {type: RuntimeDefault}
container:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end -}}
