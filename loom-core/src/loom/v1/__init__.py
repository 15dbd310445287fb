"""Generated protobuf messages of the loom.v1 wire contract.

Regenerate with scripts/gen_protos.py.
"""
