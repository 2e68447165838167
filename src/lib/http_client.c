#include "config.h"
#include "http_client.h"
