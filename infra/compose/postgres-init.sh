#!/usr/bin/env bash
# First start of the region's PostgreSQL: the schema owner (runs `bulwark migrate`), the app role
# (row access only, so FORCE ROW LEVEL SECURITY binds it; `bulwark migrate` grants it), and the
# control-plane and regional databases.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$BULWARK_OWNER_DB_PASSWORD" -v app_password="$BULWARK_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE bulwark_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE bulwark_app LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
CREATE DATABASE bulwark_control OWNER bulwark_owner;
CREATE DATABASE bulwark_eu OWNER bulwark_owner;
REVOKE ALL ON DATABASE bulwark_control, bulwark_eu FROM PUBLIC;
GRANT CONNECT ON DATABASE bulwark_control, bulwark_eu TO bulwark_app;
SQL
