"""The admin's "Connecteurs": per channel, the CPTS's own settings over the server's, on or off."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from connectors import cpts_files, settings
from connectors.settings import CHANNEL_FIELDS, CHANNEL_LABELS
from hub.auth.permissions import Permission
from hub.errors import ValidationFailed
from hub.http.access import access
from hub.http.forms import attempt
from hub.http.request import db

bp = Blueprint("connectors_admin", __name__, url_prefix="/admin/connecteurs")


@bp.get("")
@access(Permission.CONNECTORS_MANAGE)
def index():
    return _page()


@bp.post("/<channel>")
@access(Permission.CONNECTORS_MANAGE)
def save(channel: str):
    settings.fields_of(channel)  # an unknown channel is a 404
    is_enabled = request.form.get("is_enabled") in ("true", "on")
    scope = settings.Scope.of(current_app.config["HUB"], current_user.cpts_id)
    _, refused = attempt(
        lambda: settings.save(
            db(),
            current_user,
            cpts_id=current_user.cpts_id,
            channel=channel,
            is_enabled=is_enabled,
            form=request.form,
            scope=scope,
        ),
        refusals=ValidationFailed,
    )
    if refused:
        return _page(channel, request.form.to_dict(), refused.errors, status=422)
    state = "activé" if is_enabled else "désactivé : ses envois attendent"
    flash(f"Connecteur « {CHANNEL_LABELS[channel]} » enregistré ({state}).", "success")
    return redirect(url_for("connectors_admin.index") + f"#c-{channel}")


def _page(failed_channel=None, failed_values=None, errors=None, *, status: int = 200):
    rows = settings.settings_by_channel(db(), current_user.cpts_id)
    stored = {channel: settings.values_of(rows.get(channel)) for channel in CHANNEL_FIELDS}
    values = {**stored, failed_channel: failed_values} if failed_channel else stored
    server = current_app.config["HUB"]
    files_dir = settings.Scope.of(server, current_user.cpts_id).files_dir
    context = {
        "channels": CHANNEL_FIELDS,
        "labels": CHANNEL_LABELS,
        "rows": rows,
        "values": values,
        "server": {name: server.get(name) for fields in CHANNEL_FIELDS.values() for name in fields},
        "files": cpts_files.available_files(files_dir),
        # Stored names that designate no file of the CPTS (paths saved before names were chosen, files
        # removed since): the page says so; the channel's messages wait until another file is chosen.
        "unusable": {
            name for channel in CHANNEL_FIELDS for name in settings.unusable_files(channel, stored[channel], files_dir)
        },
        "failed_channel": failed_channel,
        "errors": errors or {},
    }
    return render_template("connectors_admin/index.html", **context), status
