"""Generated protobuf and gRPC modules of package openvpp.v1 (make gen-protos)."""
