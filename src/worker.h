#ifndef SCALER_WORKER_H
#define SCALER_WORKER_H
#endif
