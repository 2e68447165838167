#ifndef SCALER_HOST_H
#define SCALER_HOST_H
#endif
