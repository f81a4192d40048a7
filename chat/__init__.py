"""Chat: the orchestration of one grounded answer (docs/ARCHITECTURE.md, "The path of a chat
request"), the sessions it lives in, and the per-tenant debug switch."""
