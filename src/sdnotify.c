#include "config.h"
#include "sdnotify.h"
