#ifndef SCALER_ADMIN_H
#define SCALER_ADMIN_H
#endif
