#!/bin/sh
# Entrypoint of the scalerd image: writes the API token from SCALER_TOKEN
# to the file the demo's node configs name (token_file), then runs scalerd
# as the scaler user, with the group of the Docker socket when one is
# mounted at /var/run/docker.sock (the docker driver talks to it).
set -eu
if [ -z "${SCALER_TOKEN:-}" ]; then
	echo "scalerd-entrypoint: SCALER_TOKEN is not set; copy demo/env.example to demo/.env and set it" >&2
	exit 1
fi
umask 077
mkdir -p /run/scaler
printf '%s\n' "$SCALER_TOKEN" >/run/scaler/token
if [ "$(id -u)" != 0 ]; then
	exec /usr/sbin/scalerd "$@"
fi
chown -R scaler:scaler /run/scaler
if [ -S /var/run/docker.sock ]; then
	groups=--groups=$(stat -c %g /var/run/docker.sock)
else
	groups=--clear-groups
fi
exec setpriv --reuid=scaler --regid=scaler "$groups" --inh-caps=-all /usr/sbin/scalerd "$@"
