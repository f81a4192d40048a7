"""Chat failures as problem details."""

from __future__ import annotations

from kernel.errors import InvalidInput, NotFound


class ChatSessionNotFound(NotFound):
    """Another person's session, or none: the same 404."""

    code = "chat_session_not_found"
    title = "Chat session not found"

    def __init__(self) -> None:
        super().__init__("No such chat session of yours in this tenant.")


class NotAChatQuestion(InvalidInput):
    code = "no_user_message"
    title = "No user message"

    def __init__(self) -> None:
        super().__init__("The messages must hold a user message with visible text to answer.")
