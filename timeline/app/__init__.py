"""The application wiring: config, scheduler, metrics, the operations endpoint, process roles."""
