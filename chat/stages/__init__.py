"""The stages of one chat answer, in the order ``chat.pipeline`` runs them: guard, cache,
retrieve, generate, verify, deliver, record (docs/ARCHITECTURE.md, "The path of a chat
request")."""
