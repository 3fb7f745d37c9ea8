{{/*
The spec the gateway runs, as it goes into its ConfigMap: exactly what the gateway reads. The
user's models and gateway sections without the chart-only keys (files/defaults.yaml chartOnlyKeys:
resources, probes, cache ... so changing an engine's CPU request does not restart the gateways),
without `replicas` of the models the gateway discovers by DNS, and with every secret replaced by a
${ENV} reference (the gateway substitutes them at start, and the chart feeds those variables from
Secrets). Tokens, the database URL, upstream API keys, the broker URL and Hugging Face tokens never
reach a ConfigMap. The gateway's timeouts follow gateway.requestTimeoutS unless given. Returns YAML.
*/}}
{{- define "flotilla.gatewaySpec" -}}
{{- $defaults := .Files.Get "files/defaults.yaml" | fromYaml -}}
{{- $models := list -}}
{{- range $i, $given := .Values.models -}}
{{- $model := omit $given "hfToken" -}}
{{- range $key := $defaults.chartOnlyKeys.model }}{{ $model = omit $model $key }}{{ end -}}
{{- if ne $given.engine "external" }}{{ $model = omit $model "replicas" }}{{ end -}}
{{- if $given.apiKey -}}
{{- $_ := set $model "apiKey" (printf "${FLOTILLA_MODEL_%d_API_KEY}" $i) -}}
{{- end -}}
{{- $models = append $models $model -}}
{{- end -}}
{{- $gateway := omit .Values.gateway "tokens" "database" "dispatcher" "host" -}}
{{- range $key := $defaults.chartOnlyKeys.gateway }}{{ $gateway = omit $gateway $key }}{{ end -}}
{{- $tokens := list -}}
{{- range $i, $token := .Values.gateway.tokens -}}
{{- $tokens = append $tokens (set (deepCopy $token) "token" (printf "${%s}" (include "flotilla.tokenEnv" $i))) -}}
{{- end -}}
{{- $_ := set $gateway "tokens" $tokens -}}
{{- $_ := set $gateway "host" "0.0.0.0" -}}
{{- $_ := set $gateway "database" "${FLOTILLA_DATABASE_URL}" -}}
{{- if ne .Values.rabbitmq.type "none" -}}
{{- $dispatcher := dict "kind" "rabbitmq" "url" "${FLOTILLA_RABBITMQ_URL}" -}}
{{- $dispatcher = merge $dispatcher (omit (.Values.gateway.dispatcher | default dict) "kind" "url") -}}
{{- $_ := set $dispatcher "prefix" (include "flotilla.dispatcherPrefix" .) -}}
{{- $_ := set $gateway "dispatcher" $dispatcher -}}
{{- end -}}
{{- /* One timeout knob: a request the Ingress would cut is not queued or awaited longer by the gateway. */ -}}
{{- $timeout := include "flotilla.requestTimeout" . | int -}}
{{- /* firstByteTimeoutS bounds the wait for an engine's answer; upstreamTimeoutS is its deprecated name. */ -}}
{{- range $key := list "maxQueueWaitS" "firstByteTimeoutS" -}}
{{- if and (has $key $defaults.gatewayKeys) (kindIs "invalid" (index $gateway $key)) (or (ne $key "firstByteTimeoutS") (kindIs "invalid" (index $gateway "upstreamTimeoutS"))) -}}
{{- $_ := set $gateway $key $timeout -}}
{{- end -}}
{{- end -}}
{{- $spec := dict "models" $models "gateway" $gateway -}}
{{- with include "flotilla.gatewayPipelines" . | fromYamlArray }}{{ $_ := set $spec "pipelines" . }}{{ end -}}
{{- toYaml $spec -}}
{{- end -}}

{{/*
The spec's pipelines as the gateway runs them in the cluster (the pipeline runtime is inside the
gateway: chart README, "Pipelines"). Each retriever's store is placed where the pods can keep it:
a SQLite store on the gateway's data volume (/var/lib/flotilla/vectors/<pipeline>-<node>.db; the
root filesystem is read-only), a pgvector store without `url` on vectorStore's server through
${FLOTILLA_VECTOR_DB_URL} (filled from a Secret in the pod). Refuses what cannot work in a cluster.
Returns a YAML list.
*/}}
{{- define "flotilla.gatewayPipelines" -}}
{{- $root := . -}}
{{- $pipelines := list -}}
{{- range $p := .Values.pipelines | default list -}}
{{- $nodes := dict -}}
{{- range $name, $node := $p.nodes -}}
{{- $n := deepCopy $node -}}
{{- if eq $node.kind "retriever" -}}
{{- $store := deepCopy ($node.store | default (dict "kind" "sqlite")) -}}
{{- if eq $store.kind "sqlite" -}}
{{- if gt (int $root.Values.gateway.replicas) 1 -}}
{{- include "flotilla.refuse" (printf "pipelines[%s].nodes.%s.store: a sqlite store lives on one gateway pod's volume, and gateway.replicas is %d: use kind pgvector (vectorStore) so that every gateway pod sees the same documents" $p.name $name (int $root.Values.gateway.replicas)) -}}
{{- end -}}
{{- $_ := set $store "path" (printf "/var/lib/flotilla/vectors/%s-%s.db" $p.name $name) -}}
{{- else if and (eq $store.kind "pgvector") (not $store.url) -}}
{{- if eq $root.Values.vectorStore.type "none" -}}
{{- include "flotilla.refuse" (printf "pipelines[%s].nodes.%s.store: a pgvector store without `url` needs vectorStore.type internal (the chart's PostgreSQL) or external (a URL in a Secret)" $p.name $name) -}}
{{- end -}}
{{- $_ := set $store "url" "${FLOTILLA_VECTOR_DB_URL}" -}}
{{- end -}}
{{- $_ := set $n "store" $store -}}
{{- end -}}
{{- $_ := set $nodes $name $n -}}
{{- end -}}
{{- $pipelines = append $pipelines (set (deepCopy $p) "nodes" $nodes) -}}
{{- end -}}
{{- toYaml $pipelines -}}
{{- end -}}

{{/* "true" when a pipeline keeps its vectors in SQLite files (on the gateway's data volume). */}}
{{- define "flotilla.sqliteVectors" -}}
{{- range $p := .Values.pipelines | default list -}}
{{- range $name, $node := $p.nodes -}}
{{- if and (eq $node.kind "retriever") (eq (dig "store" "kind" "sqlite" $node) "sqlite") }}true{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The gateway has a data volume (/var/lib/flotilla): the SQLite token database, or SQLite vector stores. */}}
{{- define "flotilla.gatewayDataVolume" -}}
{{- if or (eq .Values.tokenDatabase.type "sqlite") (include "flotilla.sqliteVectors" .) }}true{{ end -}}
{{- end -}}

{{/* The chart makes a CloudNativePG Cluster: the token database, or pipelines' vectors (vectorStore internal). */}}
{{- define "flotilla.postgresCluster" -}}
{{- if or (eq .Values.tokenDatabase.type "postgresql") (eq .Values.vectorStore.type "internal") }}true{{ end -}}
{{- end -}}

{{/*
Everything a gateway pod reads, hashed into its pod annotation so that a change rolls the pods and
nothing else does: the ConfigMap'd spec, the Secrets the chart makes for it (tokens, API keys,
URLs; not the benchmark's), and, at install/upgrade time, a gateway.tokensSecret of your own.
*/}}
{{- define "flotilla.gatewayChecksum" -}}
{{- $read := list (include "flotilla.gatewaySpec" .) (include "flotilla.gatewaySecretData" . | fromYaml | toJson) -}}
{{- with .Values.gateway.tokensSecret -}}
{{- $read = append $read ((lookup "v1" "Secret" $.Release.Namespace .).data | default dict | toJson) -}}
{{- end -}}
{{- join "\n" $read | sha256sum -}}
{{- end -}}

{{/* Data of the chart's gateway Secret: values given in clear (tokens, upstream API keys, external URLs). YAML, base64 values. */}}
{{- define "flotilla.gatewaySecretData" -}}
{{- $data := dict }}
{{- if not .Values.gateway.tokensSecret }}
{{- range .Values.gateway.tokens }}
{{- $_ := set $data (printf "token.%s" .name) (.token | b64enc) }}
{{- end }}
{{- end }}
{{- range .Values.models }}
{{- if .apiKey }}
{{- $_ := set $data (printf "apikey.%s" .name) (.apiKey | b64enc) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.tokenDatabase.type "external") .Values.tokenDatabase.external.url }}
{{- $_ := set $data "database-url" (.Values.tokenDatabase.external.url | b64enc) }}
{{- end }}
{{- if and (eq .Values.rabbitmq.type "external") .Values.rabbitmq.external.url }}
{{- $_ := set $data "rabbitmq-url" (.Values.rabbitmq.external.url | b64enc) }}
{{- end }}
{{- if and (eq .Values.vectorStore.type "external") .Values.vectorStore.external.url }}
{{- $_ := set $data "vector-db-url" (.Values.vectorStore.external.url | b64enc) }}
{{- end }}
{{- toYaml $data }}
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
{{- $vs := .Values.vectorStore }}
{{- if eq $vs.type "internal" }}
{{- /* CloudNativePG's app Secret carries the whole URL (postgresql://...) under `uri`. */}}
- name: FLOTILLA_VECTOR_DB_URL
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s-app" (include "flotilla.postgresClusterName" .) }}
      key: uri
{{- else if eq $vs.type "external" }}
- name: FLOTILLA_VECTOR_DB_URL
  valueFrom:
    secretKeyRef:
      name: {{ $vs.external.existingSecret | default (include "flotilla.gatewaySecretName" .) }}
      key: {{ if $vs.external.existingSecret }}{{ $vs.external.secretKey }}{{ else }}vector-db-url{{ end }}
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
