"""Integration service: partners, the certificate authority, endpoint validation."""
