#!/bin/sh
# Entrypoint of the demo's scalerd image: writes the API token from the
# environment to the file scaler-node*.conf names, then runs scalerd.
set -eu
if [ -z "${SCALER_TOKEN:-}" ]; then
	echo "scalerd-entrypoint: SCALER_TOKEN is not set; copy demo/env.example to demo/.env and set it" >&2
	exit 1
fi
mkdir -p /run/scaler
umask 077
printf '%s\n' "$SCALER_TOKEN" >/run/scaler/token
exec /usr/sbin/scalerd "$@"
