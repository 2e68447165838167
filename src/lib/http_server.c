#include "config.h"
#include "http_server.h"
