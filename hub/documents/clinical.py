"""What a clinical document says about itself, independent of where it came from (a report, a téléexpertise
request): its id, type, patient, author, participants, custodian and sections.

The renderers (PDF, CDA R2) read a `ClinicalDocument`; the outbox carries a `DocumentPackage`: the document's
metadata plus the hash and size of its stored renderings, so that the MSSanté and DMP connectors can rebuild
the message from the stored bytes, identical on every attempt.
"""

import datetime as dt
import functools
import uuid
from dataclasses import dataclass, field, fields, is_dataclass

# The hub's own OID arc for document ids (a test arc under the ANS root for structures without their own).
HUB_DOCUMENT_OID_ROOT = "1.2.250.1.999.1.1"
CONFIDENTIALITY_NORMAL = "N"


def new_document_uid() -> str:
    """A unique OID under the UUID arc 2.25 (ISO/IEC 9834-8): no registry needed, never reused."""
    return f"2.25.{uuid.uuid4().int}"


@dataclass(frozen=True)
class PatientIdentity:
    """The patient as a document names them. `ins` and `ins_oid` are set only for a QUAL identity: the INS
    never leaves the hub otherwise; `local_id` (the hub's patient id under the CPTS's arc) always is."""

    birth_name: str
    first_birth_given_name: str
    birth_date: dt.date
    sex: str  # M, F (INS administrative sex)
    birth_place_insee: str
    local_id: str
    used_last_name: str | None = None
    used_first_name: str | None = None
    birth_given_names: str | None = None
    ins: str | None = None
    ins_oid: str | None = None
    identity_status: str = "PROV"


@dataclass(frozen=True)
class ProfessionalIdentity:
    rpps: str | None
    last_name: str
    first_name: str
    profession: str  # French label: "Médecin spécialiste", "Infirmier"…
    specialty: str | None = None
    role: str | None = None  # "Auteur", "IDEL accompagnant", "Requérant"…
    mssante_address: str | None = None

    @property
    def idnat_ps(self) -> str | None:
        """IdNat_PS: `8` followed by the RPPS (CI-SIS)."""
        return f"8{self.rpps}" if self.rpps else None

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class Custodian:
    name: str
    finess: str | None = None
    local_id: str | None = None


@dataclass(frozen=True)
class Section:
    title: str
    text: str


@dataclass(frozen=True)
class ClinicalDocument:
    document_uid: str  # OID-shaped, unique, stable: the CDA id, the XDS uniqueId, the DMP idempotency key
    loinc: str  # 85208-7, 11506-3, 75496-0, 96349-6
    title: str
    created_at: dt.datetime  # aware, UTC
    patient: PatientIdentity
    author: ProfessionalIdentity
    custodian: Custodian
    service_started_at: dt.datetime | None = None
    service_ended_at: dt.datetime | None = None
    participants: tuple[ProfessionalIdentity, ...] = ()
    sections: tuple[Section, ...] = ()
    version: int = 1
    replaces_uid: str | None = None  # the document a corrected version supersedes (CDA relatedDocument RPLC)
    set_id: str | None = None  # the uid of the chain's first version (CDA setId); None: this is the first
    confidentiality: str = CONFIDENTIALITY_NORMAL


@dataclass(frozen=True)
class StoredRendering:
    role: str  # "cda" or "pdf"
    mime: str  # "text/xml", "application/pdf"
    sha256: str
    size: int
    filename: str  # in the XDM zip: DOC0001.XML, DOC0001.PDF


@dataclass(frozen=True)
class DocumentPackage:
    """What an MSSanté or DMP outbox message carries: the document's metadata and its stored renderings."""

    document: ClinicalDocument
    renderings: tuple[StoredRendering, ...] = field(default_factory=tuple)

    def rendering(self, role: str) -> StoredRendering:
        return next(r for r in self.renderings if r.role == role)

    def to_payload(self) -> dict:
        return {"package": _jsonable(self)}

    @classmethod
    def from_payload(cls, payload: dict) -> "DocumentPackage":
        data = payload["package"]
        doc = dict(data["document"])
        doc["created_at"] = dt.datetime.fromisoformat(doc["created_at"])
        for name in ("service_started_at", "service_ended_at"):
            doc[name] = dt.datetime.fromisoformat(doc[name]) if doc.get(name) else None
        patient = dict(doc["patient"])
        patient["birth_date"] = dt.date.fromisoformat(patient["birth_date"])
        doc["patient"] = PatientIdentity(**patient)
        doc["author"] = ProfessionalIdentity(**doc["author"])
        doc["custodian"] = Custodian(**doc["custodian"])
        doc["participants"] = tuple(ProfessionalIdentity(**p) for p in doc.get("participants") or ())
        doc["sections"] = tuple(Section(**s) for s in doc.get("sections") or ())
        return cls(
            document=ClinicalDocument(**doc),
            renderings=tuple(StoredRendering(**r) for r in data.get("renderings") or ()),
        )


def _jsonable(value):
    """JSON's values for `value`, a dataclass as dataclasses.asdict gives it (its fields in order) without asdict's
    deep copy of every value, which cost a signature ~0.5 ms of CPU (issue 17, P7): nothing here is shared."""
    if value is None or isinstance(value, str):  # most of a document's values, answered first
        return value
    if is_dataclass(value) and not isinstance(value, type):
        return {name: _jsonable(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


@functools.cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))
