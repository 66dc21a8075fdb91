"""kopf handlers: thin, one module per kind, for the low-volume kinds (stores and policies). They
feed the controller and do no I/O of their own. ManagedSecrets and their Secrets are watched by
Rotor's own informer (rotor.kube.informer), which costs far less per event at thousands of objects."""
