"""Generated gRPC service stubs of the loom.v1 Bridge service (bridge.proto).

Regenerate with scripts/gen_protos.py.
"""
