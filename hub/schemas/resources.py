"""Kits, rooms and dedicated teleconsultation places: what the coordination sends, and what the API shows of
them and of their bookings (no patient: the admin manages the equipment and sees no patient record)."""

from marshmallow import Schema, fields

from hub.models import APPOINTMENT_STATE_LABELS, RESOURCE_KIND_LABELS, AppointmentKind, AppointmentState, ResourceKind
from hub.schemas.base import Enum, FormSchema, InputSchema, Int, Str, length


class ResourceIn(InputSchema):
    kind = Enum(ResourceKind, by_value=True, required=True)
    name = Str(required=True, validate=length(120, 2))
    organisation_id = Int(allow_none=True)
    address = Str(allow_none=True, validate=length(300))
    description = Str(allow_none=True, validate=length(500))


class ResourceUpdateIn(ResourceIn):
    """A change (loaded partial: only the fields sent). A kit stays a kit: programs hold it as one."""

    class Meta(InputSchema.Meta):
        exclude = ("kind",)


class ResourceForm(ResourceIn, FormSchema):
    pass


class ResourceEditForm(ResourceForm):
    class Meta(FormSchema.Meta):
        exclude = ("kind",)


class ProgramRefOut(Schema):
    id = fields.Integer()
    name = fields.String()
    is_active = fields.Boolean()


class ResourceOut(Schema):
    """A resource (hub.services.resources.Overview), the programs it is assigned to and its upcoming bookings."""

    id = fields.Integer(attribute="resource.id")
    kind = fields.Enum(ResourceKind, by_value=True, attribute="resource.kind")
    kind_label = fields.Function(lambda v: RESOURCE_KIND_LABELS[v.resource.kind])
    name = fields.String(attribute="resource.name")
    organisation_id = fields.Integer(allow_none=True, attribute="resource.organisation_id")
    address = fields.String(allow_none=True, attribute="resource.address")
    description = fields.String(allow_none=True, attribute="resource.description")
    is_active = fields.Boolean(attribute="resource.is_active")
    retired_at = fields.AwareDateTime(allow_none=True, attribute="resource.retired_at")
    programs = fields.List(fields.Nested(ProgramRefOut))
    upcoming_bookings = fields.Integer(attribute="upcoming.total")


class ResourceBookingOut(Schema):
    """An appointment holding the resource, over the time it holds it (the accompaniment window)."""

    appointment_id = fields.Integer(attribute="appointment.id")
    kind = fields.Enum(AppointmentKind, by_value=True, attribute="appointment.kind")
    state = fields.Enum(AppointmentState, by_value=True, attribute="appointment.state")
    state_label = fields.Function(lambda b: APPOINTMENT_STATE_LABELS[b.appointment.state])
    program_id = fields.Integer(allow_none=True, attribute="appointment.program_id")
    program_name = fields.String(allow_none=True)
    performer_id = fields.Integer(attribute="appointment.performer_id")
    performer_name = fields.String(attribute="appointment.performer.full_name")
    held_from = fields.AwareDateTime(attribute="starts_at")
    held_until = fields.AwareDateTime(attribute="ends_at")
    appointment_starts_at = fields.AwareDateTime(attribute="appointment.starts_at")
    appointment_ends_at = fields.AwareDateTime(attribute="appointment.ends_at")
