"""One throwaway CA for the cloud test servers (Azure Key Vault, Google Secret Manager), and a
trust bundle that adds it to the usual public roots, for the SDKs' standard variables
(``REQUESTS_CA_BUNDLE`` for requests-based clients, ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` for gRPC)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi

from rotor.devenv.certs import Pki, make_pki


@dataclass(frozen=True)
class TestCA:
    __test__ = False

    pki: Pki
    #: the public roots plus this CA: safe to hand to every client of the process
    bundle: Path

    @classmethod
    def create(cls, directory: Path) -> TestCA:
        pki = make_pki(directory)  # its serving certificate names 127.0.0.1 and localhost
        bundle = directory / "trust-bundle.pem"
        bundle.write_text(Path(certifi.where()).read_text() + "\n" + pki.ca_crt.read_text())
        return cls(pki, bundle)

    @property
    def ca_pem(self) -> bytes:
        return self.pki.ca_crt.read_bytes()

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.pki.serving_crt), str(self.pki.serving_key))
        return ctx

    def client_env(self) -> dict[str, str]:
        return {"REQUESTS_CA_BUNDLE": str(self.bundle), "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(self.bundle)}
