"""Credentials: SAS device keys and tokens (sas), X.509 test PKI (pki)."""
