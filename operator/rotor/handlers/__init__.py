"""kopf hosts the process: startup, cleanup and settings (rotor.handlers.settings). It runs no
per-object handlers; every kind Rotor reacts to comes through Rotor's own informers
(rotor.kube.informer) into the controller's index (rotor.controller.index)."""
