"""Chat: the orchestration of one grounded answer (DESIGN.md §2) and the sessions it lives in."""
