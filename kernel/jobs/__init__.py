"""Background jobs shared by ingestion, batch completions and subject-access erasure: the runner
(``runner``), its brokers (``brokers``), the ``Job`` row (``models``) and its repository."""
