{{/* Names and labels. */}}
{{- define "bulwark.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bulwark.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bulwark.region" -}}
{{- required "region is required (use a region's values file, e.g. values-eu.yaml)" .Values.region -}}
{{- end -}}

{{- define "bulwark.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "bulwark.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
bulwark.example.com/region: {{ include "bulwark.region" . }}
{{- end -}}

{{/* Selector labels of one component: api, worker or migrations. */}}
{{- define "bulwark.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bulwark.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "bulwark.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "bulwark.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bulwark.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "bulwark.appSecretName" -}}
{{- default (printf "%s-app" (include "bulwark.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "bulwark.migrationSecretName" -}}
{{- default (printf "%s-migrations" (include "bulwark.fullname" .)) .Values.secrets.existingMigrationSecret -}}
{{- end -}}

{{- define "bulwark.auditKeySecretName" -}}
{{- default (printf "%s-audit-signing-key" (include "bulwark.fullname" .)) .Values.secrets.existingAuditSigningKeySecret -}}
{{- end -}}

{{/* The non-secret settings, as BULWARK_* environment variables (app/settings.py). */}}
{{- define "bulwark.configData" -}}
{{- $region := include "bulwark.region" . | upper -}}
BULWARK_ENVIRONMENT: production
BULWARK_DATA_DIR: /var/lib/bulwark
BULWARK_SERVER__HOST: 0.0.0.0
BULWARK_SERVER__PORT: {{ .Values.api.port | quote }}
BULWARK_IDENTITY__PUBLIC_URL: {{ required "settings.publicUrl is required" .Values.settings.publicUrl | quote }}
BULWARK_OBSERVABILITY__SERVICE_NAME: {{ printf "bulwark-%s" (include "bulwark.region" .) | quote }}
BULWARK_OBSERVABILITY__LOG_LEVEL: {{ .Values.settings.logLevel | quote }}
BULWARK_OBSERVABILITY__JUDGE_SAMPLE_RATE: {{ .Values.settings.judgeSampleRate | quote }}
{{- with .Values.settings.otlpEndpoint }}
BULWARK_OBSERVABILITY__OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
BULWARK_JOBS__QUEUE: {{ .Values.settings.jobsQueue | quote }}
BULWARK_JOBS__CONCURRENCY: {{ .Values.settings.workerConcurrency | quote }}
BULWARK_KEYS__DEK_CACHE_TTL_SECONDS: {{ .Values.settings.dekCacheTtlSeconds | quote }}
BULWARK_AUDIT__SIGNING_KEY_FILE: /etc/bulwark/audit/audit-signing-key.pem
BULWARK_REGIONS__{{ $region }}__VECTOR_STORE: {{ required "dataPlane.vectorStore is required" .Values.dataPlane.vectorStore | quote }}
BULWARK_REGIONS__{{ $region }}__OBJECT_STORE: {{ required "dataPlane.objectStore is required" .Values.dataPlane.objectStore | quote }}
{{- with .Values.dataPlane.objectStoreRegion }}
BULWARK_REGIONS__{{ $region }}__OBJECT_STORE_REGION: {{ . | quote }}
{{- end }}
BULWARK_REGIONS__{{ $region }}__KMS: {{ .Values.dataPlane.kms | toJson | quote }}
BULWARK_REGIONS__{{ $region }}__MODELS: {{ .Values.models | toJson | quote }}
{{- end -}}

{{/* Pod-level pieces shared by the API, the workers and the migrations Job. */}}
{{- define "bulwark.podCommon" -}}
serviceAccountName: {{ include "bulwark.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{- define "bulwark.volumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
- name: audit-signing-key
  secret:
    secretName: {{ include "bulwark.auditKeySecretName" . }}
    defaultMode: 0440
    items:
      - key: audit-signing-key.pem
        path: audit-signing-key.pem
{{- end -}}

{{- define "bulwark.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/bulwark
- name: audit-signing-key
  mountPath: /etc/bulwark/audit
  readOnly: true
{{- end -}}
