/* systemd readiness notification (Type=notify) without libsystemd. */
#ifndef SCALER_SDNOTIFY_H
#define SCALER_SDNOTIFY_H

/* Send e.g. "READY=1" or "RELOADING=1\nMONOTONIC_USEC=..."; 0 when not
 * under systemd, 1 sent, -1 error. */
int sd_notify_send(const char *state);

#endif
