"""Forms of the account pages: accounts managed by the admin; the user's own password, second factor and API
tokens."""

from marshmallow import Schema, fields, pre_load

from hub.models import Role
from hub.schemas.base import Bool, Date, Enum, FormSchema, InputSchema, Int, List, Str, length


class UserForm(FormSchema):
    login = Str(required=True, validate=length(80, 1))
    display_name = Str(required=True, validate=length(200, 1))
    # The strength rule (length) is the service's, so that the API and the pages say the same thing.
    password = Str(required=True, validate=length(200))
    roles = List(Enum(Role, by_value=True), load_default=list)
    professional_id = Int(allow_none=True)

    @pre_load
    def _one_checkbox_is_a_list(self, data, **_kwargs):
        # A form sends a single ticked checkbox as a plain value.
        if isinstance(data, dict) and isinstance(data.get("roles"), str):
            data = {**data, "roles": [data["roles"]]}
        return data


class PasswordForm(FormSchema):
    password = Str(required=True, validate=length(200))


class ApiTokenForm(FormSchema):
    name = Str(required=True, validate=length(100, 1))
    expires_on = Date(allow_none=True)


class OwnPasswordForm(FormSchema):
    # Only shape here: the service says what is wrong (current password, length, confirmation), by field.
    current_password = Str(required=True, validate=length(200))
    new_password = Str(required=True, validate=length(200))
    new_password_confirmation = Str(required=True, validate=length(200))


class OwnTotpForm(FormSchema):
    current_password = Str(required=True, validate=length(200))
    code = Str(required=True, validate=length(10))


class LoginSettingsIn(InputSchema):
    password_refused_to_psc_users = Bool(required=True)


class LoginSettingsForm(FormSchema):
    # An unticked checkbox is not sent.
    password_refused_to_psc_users = Bool(load_default=False)


class LoginSettingsOut(Schema):
    psc_enabled = fields.Boolean()
    password_refused_to_psc_users = fields.Boolean()
    psc_users = fields.Integer()
