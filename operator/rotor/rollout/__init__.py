"""Safe rollout of the workloads that consume a Secret (DESIGN §2, "Rollout of consumers").

Pure logic only; ``rotor.services.rollout`` gathers the inputs and does the I/O:

- ``discovery``: which Deployments, StatefulSets and DaemonSets read which keys of a Secret;
- ``decisions``: whether a consumer must restart, be recorded, or be left alone, and the patches;
- ``debounce``: coalescing a burst of writes into one rollout;
- ``progress``: whether a restarted workload's rollout has finished.
"""
