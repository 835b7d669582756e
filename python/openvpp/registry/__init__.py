"""Registry service: the "DNS for DERs"."""
