#!/bin/sh
# Build the root file system of an image holding the built scaler-app and
# the libraries ldd lists for it, as a tarball to import (nothing pulled).
#
#   build-app-image.sh SCALER_APP OUT.tar
set -eu
app=${1:?usage: build-app-image.sh SCALER_APP OUT.tar}
out=${2:?usage: build-app-image.sh SCALER_APP OUT.tar}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/tmp" "$root/etc"
cp "$app" "$root/usr/bin/scaler-app"
# every library with its path, and the dynamic loader
ldd "$app" | awk '/=> \// {print $3} /^\t\// {print $1}' | while read -r lib; do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
# name resolution and CA files are not needed: host networking, 127.0.0.1 only
echo "root:x:0:0:root:/:/usr/bin/scaler-app" > "$root/etc/passwd"
tar -C "$root" -cf "$out" .
