{{/*
The spec the benchmark Job runs `flotilla bench --spec` on: the models, the gateway's tokens (as
${ENV} references, so `tokenName` works) and the benchmark section with its tokens replaced by
references too. Without any token given, the first gateway token is used. Returns YAML.
*/}}
{{- define "flotilla.benchmarkSpec" -}}
{{- $models := list -}}
{{- range .Values.models -}}
{{- $models = append $models (omit . "hfToken" "apiKey") -}}
{{- end -}}
{{- $tokens := list -}}
{{- range $i, $token := .Values.gateway.tokens -}}
{{- $tokens = append $tokens (set (deepCopy $token) "token" (printf "${%s}" (include "flotilla.tokenEnv" $i))) -}}
{{- end -}}
{{- $bench := omit .Values.benchmark "job" -}}
{{- if .Values.benchmark.token -}}
{{- $_ := set $bench "token" "${FLOTILLA_BENCH_TOKEN}" -}}
{{- end -}}
{{- $classes := list -}}
{{- range $i, $class := .Values.benchmark.classes -}}
{{- $class = deepCopy $class -}}
{{- if $class.token -}}
{{- $_ := set $class "token" (printf "${FLOTILLA_BENCH_CLASS_%d_TOKEN}" $i) -}}
{{- end -}}
{{- $classes = append $classes $class -}}
{{- end -}}
{{- $_ := set $bench "classes" $classes -}}
{{- if and (not .Values.benchmark.token) (not .Values.benchmark.tokenName) (not .Values.benchmark.classes) .Values.gateway.tokens -}}
{{- $_ := set $bench "tokenName" (first .Values.gateway.tokens).name -}}
{{- end -}}
{{- toYaml (dict "models" $models "gateway" (dict "tokens" $tokens) "benchmark" $bench) -}}
{{- end -}}
