"""`manage.py braid token create|list|revoke`: API tokens from the command line
(registered with apps.engine.cli_extensions by ApiConfig.ready)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from apps.api import tokens
from apps.api.models import ApiToken

COMMANDS = ("token",)


def add_parsers(sub) -> None:
    p = sub.add_parser("token", help="create, list or revoke API tokens")
    tsub = p.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    c = tsub.add_parser("create", help="create a token and print it (once)")
    c.add_argument("--user", required=True, metavar="USERNAME")
    c.add_argument("--scopes", required=True, metavar="S1,S2",
                   help="read, execute, operate, admin (comma-separated)")
    c.add_argument("--name", default="", help="what it is for (default: cli)")
    c.add_argument("--expires-days", type=float, metavar="N", help="default: never expires")
    ls = tsub.add_parser("list", help="list tokens (never their secrets)")
    ls.add_argument("--user", metavar="USERNAME")
    r = tsub.add_parser("revoke", help="revoke a token by its id")
    r.add_argument("token_id", type=int, metavar="ID")


def run(command, name, options) -> None:
    action = {"create": _create, "list": _list, "revoke": _revoke}[options["token_command"]]
    action(command, **options)


def _user(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"no user {username!r}", returncode=1)
    return user


def _create(command, user, scopes, name, expires_days, **_):
    token, secret = tokens.create_token(_user(user), name or "cli", scopes,
                                        expires_days=expires_days)
    expiry = token.expires_at.isoformat() if token.expires_at else "never"
    command.stderr.write(f"token {token.pk} for {user}: scopes {','.join(token.scopes)}, "
                         f"expires {expiry}. It is shown only now:")
    command.stdout.write(secret)


def _list(command, user=None, **_):
    rows = ApiToken.objects.select_related("user").order_by("user__username", "id")
    if user:
        rows = rows.filter(user=_user(user))
    for t in rows:
        state = "active" if t.is_active else ("revoked" if t.revoked_at else "expired")
        command.stdout.write(f"{t.pk}\t{t.user.username}\t{t.name}\t{t.prefix}…\t"
                             f"{','.join(t.scopes)}\t{state}")


def _revoke(command, token_id, **_):
    token = ApiToken.objects.filter(pk=token_id).first()
    if token is None:
        raise CommandError(f"no token {token_id}", returncode=1)
    tokens.revoke_token(token)
    command.stdout.write(f"revoked token {token_id} ({token.name})")
