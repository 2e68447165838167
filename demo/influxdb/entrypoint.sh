#!/bin/sh
# Runs influxd (the command) and, once it answers, creates the database
# named by INFLUXDB_DB as the official image does (CREATE DATABASE does
# nothing when it exists). SIGTERM and SIGINT are passed on to influxd.
set -u
"$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
if [ -n "${INFLUXDB_DB:-}" ]; then
	until curl -fsS -o /dev/null http://127.0.0.1:8086/ping 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	curl -fsS -o /dev/null -XPOST http://127.0.0.1:8086/query \
		--data-urlencode "q=CREATE DATABASE \"$INFLUXDB_DB\"" ||
		echo "influxdb-entrypoint: cannot create database $INFLUXDB_DB" >&2
fi
# wait returns early when a trapped signal arrives: wait again until influxd is gone
wait "$pid"
rc=$?
while kill -0 "$pid" 2>/dev/null; do
	wait "$pid"
	rc=$?
done
exit "$rc"
