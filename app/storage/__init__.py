"""Every Redis adapter: the client, keys, records, locks, the audit trail and the live feed."""
