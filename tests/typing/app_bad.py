# ruff: noqa  (deliberately wrong code: the line after each "# E:" must fail mypy)
"""Application code that misuses the repositories: each marked statement is a type error."""

from __future__ import annotations

from aragora_db import Database, UserRole


async def misuse(db: Database) -> None:
    # E: Argument "email" to "get_user_by_email" of "UsersRepository" has incompatible type "int"; expected "str"
    user = await db.users.get_user_by_email(email=42)
    # E: Item "None" of "User | None" has no attribute "name"
    print(user.name)
    # E: Too many positional arguments for "get_user_by_id" of "UsersRepository"
    await db.users.get_user_by_id("u1")
    # E: Argument "role" to "set_user_organization" of "UsersRepository" has incompatible type "str"; expected "UserRole"
    await db.users.set_user_organization(org_id=None, role="owner", id="u1")
    # E: Incompatible types in assignment (expression has type "int", variable has type "str")
    count: str = await db.users.record_login(id="u1")
    # E: "UsersRepository" has no attribute "get_user_by_emial"
    await db.users.get_user_by_emial(email="a@b.c")
    # E: Missing named argument "off" for "list_organization_members" of "UsersRepository"
    members = await db.users.list_organization_members(org_id="o", lim=10)
    # E: Property "role" defined in "ListOrganizationMembersRow" is read-only
    members[0].role = UserRole.ADMIN
