"""Retrieval and context: ingest, chunk, embed, hybrid search with the ABAC filter (issue 5)."""
