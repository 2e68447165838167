/* A balancer plugin as a third party built it against ABI 1.1 (compiled
 * with -I tests/plugins/abi-1.1): serve only, no serve_worker. It binds the
 * zone's listen address itself and answers every request "old" with
 * Connection: close, so the continuity test can see scalerd run it the way
 * it ran every balancer before ABI 1.4: one worker that binds its own
 * socket. */
#include <arpa/inet.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <scaler/plugin.h>

struct old {
	const struct scaler_host *host;
	ev_io accept_w;
	int fd;
};

struct old_conn {
	ev_io io;
};

static int ob_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	static const char *const known[] = {"plugin", NULL};
	if (conf && host->conf_check_known(conf, known) < 0)
		return -1;
	struct old *o = calloc(1, sizeof(*o));
	if (!o)
		return -1;
	o->host = host;
	o->fd = -1;
	*ctx = o;
	return 0;
}

static void ob_stop(struct old *o)
{
	if (o->fd < 0)
		return;
	ev_io_stop(o->host->loop, &o->accept_w);
	close(o->fd);
	o->fd = -1;
}

static void ob_fini(void *ctx)
{
	ob_stop(ctx);
	free(ctx);
}

/* The request is in (one small GET): answer and close. */
static void ob_on_conn(struct ev_loop *loop, ev_io *io, int revents)
{
	static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"
	                             "Connection: close\r\n\r\nold\n";
	char buf[4096];
	(void)revents;
	if (read(io->fd, buf, sizeof(buf)) > 0) {
		ssize_t w = write(io->fd, answer, sizeof(answer) - 1);
		(void)w; /* a client gone is no matter here */
	}
	ev_io_stop(loop, io);
	close(io->fd);
	free(io);
}

static void ob_on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)revents;
	for (;;) {
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct old_conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		ev_io_init(&c->io, ob_on_conn, fd, EV_READ);
		ev_io_start(loop, &c->io);
	}
}

static int ob_serve(void *ctx, const struct scaler_zone *zone)
{
	struct old *o = ctx;
	char host[64];
	const char *colon = strrchr(zone->listen, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int one = 1;
	if (!colon || (size_t)(colon - zone->listen) >= sizeof(host))
		return -1;
	memcpy(host, zone->listen, (size_t)(colon - zone->listen));
	host[colon - zone->listen] = '\0';
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	o->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (o->fd < 0)
		return -1;
	setsockopt(o->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(o->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(o->fd, 128) < 0) {
		o->host->log(SCALER_LOG_ERR, "old", "cannot listen on %s", zone->listen);
		close(o->fd);
		o->fd = -1;
		return -1;
	}
	ev_io_init(&o->accept_w, ob_on_accept, o->fd, EV_READ);
	ev_io_start(o->host->loop, &o->accept_w);
	return 0;
}

static void ob_shutdown(void *ctx)
{
	ob_stop(ctx);
}

static const struct scaler_balancer_ops ob_ops = {
    .size = sizeof(ob_ops),
    .serve = ob_serve,
    .shutdown = ob_shutdown,
};

__attribute__((visibility("default"))) const struct scaler_plugin scaler_plugin = {
    .abi_major = SCALER_ABI_MAJOR,
    .abi_minor = SCALER_ABI_MINOR,
    .size = sizeof(struct scaler_plugin),
    .kind = SCALER_KIND_BALANCER,
    .name = "old",
    .version = "1.0",
    .init = ob_init,
    .fini = ob_fini,
    .ops = {.balancer = &ob_ops},
};
