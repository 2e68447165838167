#include "config.h"
#include "supervise.h"
