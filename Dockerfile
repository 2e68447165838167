# Images of scaler built from this tree, one build stage shared by both:
#
#   docker build --target scaler-app -t scaler-app:demo .      the demo service
#   docker build --target scalerd -t scaler-scalerd:demo .     scalerd, plugins, scalerctl
#
# scripts/images builds both (and the demo's Redis and InfluxDB images) with
# nothing pulled; demo/README.md says how the compose demo uses them.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential autoconf automake libtool pkg-config \
      libev-dev libhttp-parser-dev libconfig-dev libhiredis-dev librdkafka-dev \
      libjansson-dev libcurl4-openssl-dev libssl-dev libnghttp2-dev check python3 \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# out of tree, so a configured tree in the context cannot get in the way
RUN autoreconf -fi \
 && mkdir /build && cd /build \
 && /src/configure --prefix=/usr --libdir=/usr/lib --sysconfdir=/etc --localstatedir=/var \
 && make -j"$(nproc)" \
 && make install DESTDIR=/out \
 && find /out -name '*.la' -delete \
 && rm -rf /out/usr/include /out/usr/lib/pkgconfig /out/usr/share/man \
 && strip /out/usr/bin/scaler-app /out/usr/sbin/scalerd /out/usr/bin/scalerctl \
      /out/usr/lib/scaler/*.so

# ---- scaler-app: the service the demo scales --------------------------------
# The drivers pass PORT, ZONE and SERVER_ID; metrics go where KAFKA_BROKERS
# or INFLUX_URL say (scaler-app --help).
FROM debian:bookworm-slim AS scaler-app
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libev4 libhttp-parser2.9 libjansson4 libcurl4 librdkafka1 curl \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin scaler
COPY --from=build /out/usr/bin/scaler-app /usr/bin/scaler-app
RUN ! ldd /usr/bin/scaler-app | grep 'not found'
USER scaler
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${PORT}/health_check" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/scaler-app"]

# ---- scalerd: the daemon, its plugins and scalerctl -------------------------
FROM debian:bookworm-slim AS scalerd
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libev4 libhttp-parser2.9 libconfig9 libhiredis0.14 librdkafka1 libjansson4 \
      libcurl4 libssl3 libnghttp2-14 ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/scaler --shell /usr/sbin/nologin scaler \
 && mkdir -p /var/lib/scaler /run/scaler && chown scaler:scaler /var/lib/scaler /run/scaler
COPY --from=build /out/ /
RUN ! ldd /usr/sbin/scalerd /usr/bin/scalerctl /usr/lib/scaler/*.so | grep 'not found'
COPY demo/scalerd-entrypoint.sh /usr/local/sbin/scalerd-entrypoint
# The entrypoint starts as root only to give the scaler user the group of
# the Docker socket mounted at /var/run/docker.sock (its group id differs
# from host to host); scalerd itself runs as scaler.
ENTRYPOINT ["/usr/local/sbin/scalerd-entrypoint"]
CMD ["-c", "/etc/scaler/scaler.conf"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s \
  CMD scalerctl --timeout 4 -c /etc/scaler/scaler.conf status >/dev/null || exit 1
STOPSIGNAL SIGTERM
