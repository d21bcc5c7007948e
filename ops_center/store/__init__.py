"""The event store, where the write path ends: the database URL every driver shares
(`database`), the `eventsourcing` recorder with ingest receipts (`recorder`), the
application that loads, decides and saves (`application`), the group-commit writer
(`writer`), and the stored log as readers see it (`log`)."""
