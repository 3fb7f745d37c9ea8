{{/*
The spec the gateway runs, as it goes into its ConfigMap: the user's models and gateway sections
with every secret replaced by a ${ENV} reference (the gateway substitutes them at start, and the
chart feeds those variables from Secrets). Tokens, the database URL, upstream API keys, the
broker URL and Hugging Face tokens never reach a ConfigMap. Returns YAML.
*/}}
{{- define "flotilla.gatewaySpec" -}}
{{- $models := list -}}
{{- range $i, $given := .Values.models -}}
{{- $model := omit $given "hfToken" -}}
{{- if $given.apiKey -}}
{{- $_ := set $model "apiKey" (printf "${FLOTILLA_MODEL_%d_API_KEY}" $i) -}}
{{- end -}}
{{- $models = append $models $model -}}
{{- end -}}
{{- $gateway := omit .Values.gateway "tokens" "database" "dispatcher" "host" -}}
{{- $tokens := list -}}
{{- range $i, $token := .Values.gateway.tokens -}}
{{- $tokens = append $tokens (set (deepCopy $token) "token" (printf "${%s}" (include "flotilla.tokenEnv" $i))) -}}
{{- end -}}
{{- $_ := set $gateway "tokens" $tokens -}}
{{- $_ := set $gateway "host" "0.0.0.0" -}}
{{- $_ := set $gateway "database" "${FLOTILLA_DATABASE_URL}" -}}
{{- if ne .Values.rabbitmq.type "none" -}}
{{- /* Queue names start with the release's name, so several releases may share one broker. */ -}}
{{- $_ := set $gateway "dispatcher" (dict "kind" "rabbitmq" "url" "${FLOTILLA_RABBITMQ_URL}" "prefix" (include "flotilla.fullname" .)) -}}
{{- end -}}
{{- toYaml (dict "models" $models "gateway" $gateway) -}}
{{- end -}}

{{/* The gateway tokens' variables (FLOTILLA_TOKEN_<i>), from the chart's Secret or gateway.tokensSecret. */}}
{{- define "flotilla.tokensEnv" -}}
{{- $root := . -}}
{{- range $i, $token := .Values.gateway.tokens }}
- name: {{ include "flotilla.tokenEnv" $i }}
  valueFrom:
    secretKeyRef:
      name: {{ include "flotilla.tokensSecretName" $root }}
      key: {{ include "flotilla.tokenSecretKey" (dict "root" $root "name" $token.name) }}
{{- end }}
{{- end -}}

{{/* Key of a token in its Secret: the token's name in gateway.tokensSecret, token.<name> in the chart's. ctx: dict root name */}}
{{- define "flotilla.tokenSecretKey" -}}
{{- if .root.Values.gateway.tokensSecret }}{{ .name }}{{ else }}{{ printf "token.%s" .name }}{{ end -}}
{{- end -}}

{{/* Environment of a pod that loads the gateway spec: token, database and broker variables. */}}
{{- define "flotilla.gatewaySpecEnv" -}}
{{- $root := . -}}
{{- include "flotilla.tokensEnv" . }}
{{- range $i, $given := .Values.models }}
{{- if $given.apiKey }}
- name: {{ printf "FLOTILLA_MODEL_%d_API_KEY" $i }}
  valueFrom:
    secretKeyRef:
      name: {{ include "flotilla.gatewaySecretName" $root }}
      key: {{ printf "apikey.%s" $given.name }}
{{- end }}
{{- end }}
{{- $db := .Values.tokenDatabase }}
{{- if eq $db.type "sqlite" }}
- name: FLOTILLA_DATABASE_URL
  value: "sqlite:////var/lib/flotilla/flotilla.db"
{{- else if eq $db.type "external" }}
- name: FLOTILLA_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $db.external.existingSecret | default (include "flotilla.gatewaySecretName" .) }}
      key: {{ if $db.external.existingSecret }}{{ $db.external.secretKey }}{{ else }}database-url{{ end }}
{{- else if eq $db.type "postgresql" }}
{{- /* CloudNativePG writes the app user's credentials to <cluster>-app; its passwords are alphanumeric. */}}
{{- $app := printf "%s-app" (include "flotilla.postgresClusterName" .) }}
{{- range $var, $key := dict "FLOTILLA_DB_USER" "username" "FLOTILLA_DB_PASSWORD" "password" "FLOTILLA_DB_HOST" "host" "FLOTILLA_DB_PORT" "port" "FLOTILLA_DB_NAME" "dbname" }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $app }}
      key: {{ $key }}
{{- end }}
- name: FLOTILLA_DATABASE_URL
  value: "postgresql+asyncpg://$(FLOTILLA_DB_USER):$(FLOTILLA_DB_PASSWORD)@$(FLOTILLA_DB_HOST):$(FLOTILLA_DB_PORT)/$(FLOTILLA_DB_NAME)"
{{- end }}
{{- $mq := .Values.rabbitmq }}
{{- if eq $mq.type "external" }}
- name: FLOTILLA_RABBITMQ_URL
  valueFrom:
    secretKeyRef:
      name: {{ $mq.external.existingSecret | default (include "flotilla.gatewaySecretName" .) }}
      key: {{ if $mq.external.existingSecret }}{{ $mq.external.secretKey }}{{ else }}rabbitmq-url{{ end }}
{{- else if eq $mq.type "internal" }}
{{- /* The RabbitMQ Cluster Operator writes <cluster>-default-user; its credentials are URL-safe base64. */}}
{{- $user := printf "%s-default-user" (include "flotilla.rabbitmqClusterName" .) }}
{{- range $var, $key := dict "FLOTILLA_MQ_USER" "username" "FLOTILLA_MQ_PASSWORD" "password" "FLOTILLA_MQ_HOST" "host" "FLOTILLA_MQ_PORT" "port" }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $user }}
      key: {{ $key }}
{{- end }}
- name: FLOTILLA_RABBITMQ_URL
  value: "amqp://$(FLOTILLA_MQ_USER):$(FLOTILLA_MQ_PASSWORD)@$(FLOTILLA_MQ_HOST):$(FLOTILLA_MQ_PORT)/"
{{- end }}
{{- end -}}
