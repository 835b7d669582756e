"""gRPC server assembly: interceptors, health, reflection, telemetry."""
