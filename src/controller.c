#include "config.h"
#include "controller.h"
