#!/bin/sh
# Build the root file system of scaler's docker test image as a tarball:
# a static busybox whose httpd serves /www (GET /health_check answers 200)
# on $PORT. Import it with POST /images/create?fromSrc=- (tests/lib/dockertest.py)
# or `docker import OUT.tar scaler-test-app:latest`.
#
#   build-test-image.sh OUT.tar
set -eu
out=${1:?usage: build-test-image.sh OUT.tar}
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "build-test-image.sh: busybox not found (apt-get install -y busybox-static)" >&2; exit 1; }
if ldd "$busybox" >/dev/null 2>&1; then
	echo "build-test-image.sh: $busybox is dynamically linked; install busybox-static" >&2
	exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/etc"
cp "$busybox" "$root/bin/busybox"
for applet in sh httpd sleep cat ls env; do
	ln -s busybox "$root/bin/$applet"
done
echo ok > "$root/www/health_check"
echo "scaler test app" > "$root/www/index.html"
cat > "$root/bin/serve" <<'SH'
#!/bin/sh
# serve /www on $PORT (default 8080) until SIGTERM (as PID 1 a signal
# without a handler would be ignored and every stop would wait its timeout)
/bin/busybox httpd -f -p "${PORT:-8080}" -h /www &
trap 'kill $! 2>/dev/null; exit 0' TERM INT
wait $!
SH
chmod 755 "$root/bin/serve"
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
tar -C "$root" -cf "$out" .
