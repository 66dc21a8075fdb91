"""Change notifications, the pure part: the receiver's signature and body, the Secrets Manager
events an SQS queue carries, how a notified name matches a key a ManagedSecret reads, and the
per-store token bucket. No I/O here; ``rotor.services.notifications`` acts on the results."""
