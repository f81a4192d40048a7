"""LLM gateway: tier routing, fallback, streaming, token and dollar budgets (issue 7)."""
