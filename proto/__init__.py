"""The wire contract: cardiogate.v1 protobuf messages and gRPC stubs.

Regenerate the stubs with ``python -m cardiogate.proto.generate`` after editing a .proto file;
a test fails when the committed stubs drift from the sources.
"""
