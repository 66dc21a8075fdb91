"""The embedded environment Rotor is tested and demonstrated against.

Real servers only: etcd, kube-apiserver and kube-controller-manager built from Kubernetes' Go
modules, a HashiCorp Vault dev server built from Vault's Go module, and moto's AWS server. They
run on loopback with free ports, and stop cleanly. ``rotor demo`` and the test suite share it.
"""
