"""The append-only, hash-chained audit log: recording, verifying, exporting (the log only;
subject-access requests live in ``compliance``)."""
