# Exact stub of the native extension built from rust/openvpp-py; checked by
# mypy.stubtest in `make lint`. Import through openvpp.native, never directly.

__version__: str

def verify_ed25519_batch(
    domain: bytes,
    public_keys: bytes,
    signatures: bytes,
    messages: bytes,
    offsets: list[int],
) -> bytes: ...
