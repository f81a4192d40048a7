"""The console's routes (see ``app.console``)."""

from app.console.controllers._admin import ConsoleAdminController
from app.console.controllers._base import EXCEPTION_HANDLERS, SECURITY_HEADERS
from app.console.controllers._compliance import ConsoleAuditController, ConsoleSarController
from app.console.controllers._documents import ConsoleDocumentController
from app.console.controllers._entry import ConsoleEntryController, ConsoleSessionController
from app.console.controllers._playground import ConsolePlaygroundController

CONSOLE_CONTROLLERS = [
    ConsoleEntryController,
    ConsoleSessionController,
    ConsoleAdminController,
    ConsoleDocumentController,
    ConsoleAuditController,
    ConsoleSarController,
    ConsolePlaygroundController,
]

__all__ = ["CONSOLE_CONTROLLERS", "EXCEPTION_HANDLERS", "SECURITY_HEADERS"]
