#include "config.h"
#include "redis_conn.h"
