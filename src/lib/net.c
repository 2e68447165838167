#include "config.h"

#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static int net_parse_port(const char *s, int *port, int flags)
{
	long v = 0;

	if (*s == '\0' || strlen(s) > 5)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (v > 65535 || (v == 0 && !(flags & NET_PORT_ZERO_OK)))
		return -1;
	*port = (int)v;
	return 0;
}

static int net_host_chars_ok(const char *h, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = h[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_'))
			return 0;
	}
	return 1;
}

int net_parse_hostport_flags(const char *s, char *host, size_t hostlen, int *port, int flags)
{
	const char *h, *colon;
	size_t len;

	if (!s || !host || hostlen == 0 || !port)
		return -1;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -1;
		h = s + 1;
		len = (size_t)(close - h);
		colon = close + 1;
		char tmp[INET6_ADDRSTRLEN];
		struct in6_addr a6;
		if (len == 0 || len >= sizeof(tmp))
			return -1;
		memcpy(tmp, h, len);
		tmp[len] = '\0';
		if (inet_pton(AF_INET6, tmp, &a6) != 1)
			return -1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -1; /* no port, or an IPv6 address without brackets */
		h = s;
		len = (size_t)(colon - s);
		if (len == 1 && h[0] == '*')
			len = 0;
		else if (!net_host_chars_ok(h, len))
			return -1;
	}
	if (len >= hostlen)
		return -1;
	if (net_parse_port(colon + 1, port, flags) < 0)
		return -1;
	memcpy(host, h, len);
	host[len] = '\0';
	if (len && s[0] != '[' && strspn(host, "0123456789.") == len) {
		struct in_addr a4; /* dotted decimal must be a real IPv4 address */
		if (inet_pton(AF_INET, host, &a4) != 1)
			return -1;
	}
	return 0;
}

int net_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	return net_parse_hostport_flags(s, host, hostlen, port, 0);
}

int net_listen(const char *hostport, int backlog, char *err, size_t errlen)
{
	return net_listen_flags(hostport, backlog, 0, err, errlen);
}

int net_listen_flags(const char *hostport, int backlog, int flags, char *err, size_t errlen)
{
	char host[256], service[8];
	int port, fd = -1, rc, saved = 0;
	struct addrinfo hints, *res = NULL;
	const char *what = "bind";

	if (net_parse_hostport_flags(hostport, host, sizeof(host), &port, NET_PORT_ZERO_OK) < 0) {
		snprintf(err, errlen,
		         "invalid listen address \"%s\" (expected host:port or [v6]:port)",
		         hostport ? hostport : "");
		return -1;
	}
	snprintf(service, sizeof(service), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : "0.0.0.0", service, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "listen %s: cannot resolve \"%s\": %s", hostport, host,
		         gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int one = 1;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			what = "socket";
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (flags & NET_LISTEN_REUSEPORT)
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			if (listen(fd, backlog > 0 ? backlog : 128) == 0)
				break;
			what = "listen";
		} else {
			what = "bind";
		}
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(err, errlen, "listen %s: %s: %s", hostport, what, strerror(saved));
	return fd;
}

static int net_in6_is_loopback(const struct in6_addr *a)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (IN6_IS_ADDR_LOOPBACK(a))
		return 1;
	return memcmp(a->s6_addr, mapped, sizeof(mapped)) == 0 && a->s6_addr[12] == 127;
}

int net_http_url(const char *hostport, const char *path, char *out, size_t outlen)
{
	char host[256];
	int port;
	if (!hostport || net_parse_hostport(hostport, host, sizeof(host), &port) < 0)
		return -1;
	const char *h = host;
	if (!host[0] || strcmp(host, "0.0.0.0") == 0)
		h = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		h = "::1";
	int v6 = strchr(h, ':') != NULL;
	int n = snprintf(out, outlen, "http://%s%s%s:%d%s", v6 ? "[" : "", h, v6 ? "]" : "", port,
	                 path ? path : "");
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int net_addr_is_loopback(const char *hostport)
{
	char host[256];
	int port;
	struct in_addr a4;
	struct in6_addr a6;

	if (!hostport)
		return 0;
	if (net_parse_hostport_flags(hostport, host, sizeof(host), &port, NET_PORT_ZERO_OK) < 0) {
		/* a bare host: "127.0.0.1", "::1", "[::1]", "localhost" */
		size_t len = strlen(hostport);
		if (len >= sizeof(host))
			return 0;
		if (len >= 2 && hostport[0] == '[' && hostport[len - 1] == ']') {
			memcpy(host, hostport + 1, len - 2);
			host[len - 2] = '\0';
		} else {
			memcpy(host, hostport, len + 1);
		}
	}
	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return net_in6_is_loopback(&a6);
	return 0;
}

int net_sockaddr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return net_in6_is_loopback(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return 0;
}

char *net_sockaddr_str(const struct sockaddr *sa, char *buf, size_t buflen)
{
	char addr[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
		snprintf(buf, buflen, "%s:%u", addr, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
		snprintf(buf, buflen, "[%s]:%u", addr, ntohs(in6->sin6_port));
	} else if (sa->sa_family == AF_UNIX) {
		snprintf(buf, buflen, "unix");
	} else {
		snprintf(buf, buflen, "?");
	}
	return buf;
}

int net_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}
