#!/bin/sh
# `redis-server ARGS...` runs with protected mode off, as in the official
# image: without it Redis answers clients on other containers only with an
# error, since no password is set. The arguments given may turn it back on.
set -eu
if [ "${1:-}" = redis-server ]; then
	shift
	exec redis-server --protected-mode no "$@"
fi
exec "$@"
