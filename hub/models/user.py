import datetime as dt
from enum import StrEnum
from typing import Protocol

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.professional import Profession, Professional


class Role(StrEnum):
    ADMIN = "admin"
    COORDINATOR = "coordinator"
    PROFESSIONAL = "professional"


ROLE_LABELS = {
    Role.ADMIN: "Administrateur·rice",
    Role.COORDINATOR: "Coordinateur·rice",
    Role.PROFESSIONAL: "Professionnel·le de santé",
}


class Actor(Protocol):
    """Who acts, as a workflow reads them: a `User`, or the `accounts.Caller` that an API view not marked
    `needs_account` and a light page hand over instead (hub.http.access), which carries only this. A workflow typed
    `User` reading more of a Caller (`actor.professional`…) costs a read and a warning per request."""

    @property
    def id(self) -> int: ...

    @property
    def login(self) -> str: ...

    @property
    def cpts_id(self) -> int: ...

    @property
    def professional_id(self) -> int | None: ...

    @property
    def roles(self) -> frozenset[Role]: ...

    def has_role(self, role: Role) -> bool: ...


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The last TOTP time step accepted: a code is good once (S9), even across processes.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    professional_id: Mapped[int | None] = mapped_column(ForeignKey("professionals.id"), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    deactivated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The first login through Pro Santé Connect: from then on the user "has PSC" (see Organisation).
    psc_linked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    professional: Mapped[Professional | None] = relationship(lazy="joined")
    role_rows: Mapped[list["UserRole"]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", back_populates="user"
    )

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(row.role for row in self.role_rows)

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    @property
    def profession(self) -> Profession | None:
        """The linked professional's, as a light page's `accounts.SessionCaller` carries it."""
        return self.professional.profession if self.professional is not None else None

    # flask-login's protocol, kept here so that the login manager needs no wrapper class.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[Role] = mapped_column(enum_type(Role, "role"), primary_key=True)

    user: Mapped[User] = relationship(back_populates="role_rows")


class UserSession(Base):
    """A logged-in browser session, kept server-side so that logout and deactivation end it."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie's session id
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(40))


class LoginAttempt(Base):
    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_login_at", "login", "attempted_at"),
        Index("ix_login_attempts_ip_at", "ip", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(80))
    ip: Mapped[str] = mapped_column(String(45))
    attempted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    succeeded: Mapped[bool] = mapped_column(Boolean)


class ApiToken(Base):
    """A personal access token: shown once, stored as its SHA-256, acting with its owner's rights."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")
