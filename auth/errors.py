from __future__ import annotations

from app.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"
    title = "Invalid credentials"

    def __init__(
        self, detail: str = "The credential is missing, malformed, revoked or unknown."
    ) -> None:
        super().__init__(detail)


class RoleRequired(Forbidden):
    code = "role_required"
    title = "Role required"

    def __init__(self, roles: list[str]) -> None:
        super().__init__(
            f"This action needs one of the roles: {', '.join(roles)}.", required_roles=roles
        )


class OperatorRequired(Forbidden):
    code = "operator_required"
    title = "Operator required"

    def __init__(self) -> None:
        super().__init__("This action is reserved to the platform operator.")


class TenantPrincipalRequired(Forbidden):
    code = "tenant_principal_required"
    title = "Tenant principal required"

    def __init__(self) -> None:
        super().__init__("This action needs a tenant user's credential, not the operator token.")


class UserNotFound(NotFound):
    code = "user_not_found"
    title = "User not found"

    def __init__(self) -> None:
        super().__init__("No such user in this tenant.")


class GroupNotFound(NotFound):
    code = "group_not_found"
    title = "Group not found"

    def __init__(self) -> None:
        super().__init__("No such group in this tenant.")


class MembershipNotFound(NotFound):
    code = "membership_not_found"
    title = "Membership not found"

    def __init__(self) -> None:
        super().__init__("That user is not a member of that group.")


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    title = "API key not found"

    def __init__(self) -> None:
        super().__init__("No such active API key in this tenant.")


class EmailTaken(Conflict):
    code = "email_taken"
    title = "Email taken"

    def __init__(self) -> None:
        super().__init__("A user with this email already exists in this tenant.")


class GroupNameTaken(Conflict):
    code = "group_name_taken"
    title = "Group name taken"

    def __init__(self) -> None:
        super().__init__("A group with this name already exists in this tenant.")


class NotASession(InvalidInput):
    code = "not_a_session"
    title = "Not a session"

    def __init__(self) -> None:
        super().__init__("Logout ends a Bulwark session; this request was not made with one.")
