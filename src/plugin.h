#ifndef SCALER_PLUGIN_H
#define SCALER_PLUGIN_H
#endif
