"""The OpenAPI 3.1 document of /api/v1, built from the URL map and the marshmallow schemas."""

import re
from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app
from marshmallow import fields

from hub.api import blueprint
from hub.formatting import percent
from hub.http.access import PUBLIC, access
from hub.models import Modality, OutboxState, PlaceKind, Profession
from hub.schemas.account import LoginSettingsIn, LoginSettingsOut
from hub.schemas.attendance import AttendanceIn, AttendanceOut, VideoOut
from hub.schemas.audit_chain import AuditChainOut, VerificationOut
from hub.schemas.base import DAY_IN_WINDOW, MAX_PAGE
from hub.schemas.desk import DeskOut
from hub.schemas.directory import OrganisationIn, OrganisationOut, ProfessionalIn, ProfessionalOut
from hub.schemas.fees import (
    ActivityIn,
    ActivityOut,
    DeclaredMonthOut,
    Euros,
    FeeOut,
    PharmacyAssistanceOut,
    RemoteShareOut,
    ShareOverrideOut,
    TariffIn,
    TariffOut,
)
from hub.schemas.gp_matching import (
    CapacityIn,
    CapacityOut,
    GpProposalOut,
    GpSearchDetailOut,
    GpSearchIn,
    GpSearchListOut,
    GpSearchWithdrawIn,
    ProposeIn,
    RefuseIn,
)
from hub.schemas.indicators import IndicatorsOut
from hub.schemas.outbox import OutboxMessageOut, OutboxStatusOut
from hub.schemas.pathways import (
    EligibilityIn,
    EligibilityOut,
    PathwayIn,
    PathwayOut,
    PathwayReasonIn,
    StepBookingIn,
    TemplateCopyIn,
    TemplateOut,
    TemplateStepsIn,
)
from hub.schemas.patient import (
    ConsentIn,
    ConsentOut,
    ConsentWithdrawalIn,
    ConsentWithdrawalOut,
    IdentityCheckIn,
    PatientIn,
    PatientOut,
    PatientSummaryOut,
)
from hub.schemas.referrals import (
    AppointmentCandidatesOut,
    AttachmentIn,
    AttachmentOut,
    CandidatesOut,
    ReferralIn,
    ReferralOut,
    ReferralPageOut,
    ReferralUpdateIn,
    ScheduleIn,
    SubmitIn,
)
from hub.schemas.reports import RecipientOut, ReportOut, ReportStartIn, ReportUpdateIn, SessionDayOut
from hub.schemas.resources import ResourceBookingOut, ResourceIn, ResourceOut, ResourceUpdateIn
from hub.schemas.scheduling import (
    AppointmentIn,
    AppointmentOut,
    BookingOut,
    CheckInIn,
    ChecklistIn,
    NoBodyIn,
    PathwayBookedOut,
    PathwayPlanOut,
    PathwayScheduleIn,
    ProgramIn,
    ProgramOut,
    ProgramSeriesIn,
    ProgramUpdateOut,
    ReasonIn,
    ReassignIn,
    SeriesBookedOut,
    SeriesBookIn,
    SeriesCheckOut,
    SeriesIn,
    SeriesStopOut,
    SlotOut,
)
from hub.schemas.service_area import ServiceAreaIn, ServiceAreaOut
from hub.schemas.sessions import IncidentIn, IncidentOut, RitualsIn, RitualsOut
from hub.schemas.teleexpertise import AnswerIn, AssignIn, DeclineIn, TeleexpertiseIn, TeleexpertiseOut
from hub.schemas.waiting import FreedSlotOut, OfferIn, OfferOut, WaitingEntryOut, WaitingIn, WaitingWithdrawIn
from workflows.fees import REMOTE_SHARE_LIMIT

# endpoint → (summary, request schema or None, response schema, is a paginated list)
OPERATIONS = {
    "api.list_patients": (
        "Rechercher des patients (ceux que l'appelant peut voir)",
        None,
        PatientSummaryOut,
        True,
    ),
    "api.create_patient": ("Créer un patient (identité provisoire)", PatientIn, PatientOut, False),
    "api.get_patient": ("Lire un patient", None, PatientOut, False),
    "api.update_patient": ("Modifier un patient", PatientIn, PatientOut, False),
    "api.add_identity_check": ("Tracer une vérification d'identité", IdentityCheckIn, PatientOut, False),
    "api.add_consent": ("Enregistrer un consentement", ConsentIn, ConsentOut, False),
    "api.withdraw_consent": ("Retirer un consentement", ConsentWithdrawalIn, ConsentWithdrawalOut, False),
    "api.list_professionals": ("Annuaire des professionnels de la CPTS", None, ProfessionalOut, True),
    "api.create_professional": ("Créer un professionnel", ProfessionalIn, ProfessionalOut, False),
    "api.get_professional": ("Lire un professionnel", None, ProfessionalOut, False),
    "api.update_professional": ("Modifier un professionnel", ProfessionalIn, ProfessionalOut, False),
    "api.list_organisations": ("Structures de la CPTS", None, OrganisationOut, True),
    "api.create_organisation": ("Créer une structure", OrganisationIn, OrganisationOut, False),
    "api.get_organisation": ("Lire une structure", None, OrganisationOut, False),
    "api.update_organisation": ("Modifier une structure", OrganisationIn, OrganisationOut, False),
    "api.get_login_settings": ("Réglages de connexion de la CPTS (Pro Santé Connect)", None, LoginSettingsOut, False),
    "api.update_login_settings": (
        "Refuser ou non le mot de passe aux professionnels qui se connectent par Pro Santé Connect",
        LoginSettingsIn,
        LoginSettingsOut,
        False,
    ),
    "api.list_programs": ("Programmes de séances de la CPTS", None, ProgramOut, True),
    "api.create_program": ("Créer un programme récurrent et ses créneaux", ProgramIn, ProgramOut, False),
    "api.get_program": ("Lire un programme", None, ProgramOut, False),
    "api.update_program": ("Modifier toute la série à partir de maintenant", ProgramSeriesIn, ProgramUpdateOut, False),
    "api.cancel_program": (
        "Arrêter la série : créneaux à venir retirés, rendez-vous annulés",
        ReasonIn,
        SeriesStopOut,
        False,
    ),
    "api.list_slots": ("Créneaux d'un programme et leur état", None, SlotOut, True),
    "api.list_resources": (
        "Matériel, salles et lieux dédiés de la CPTS, leurs programmes et rendez-vous à venir",
        None,
        ResourceOut,
        True,
    ),
    "api.create_resource": ("Créer un matériel, une salle ou un lieu dédié", ResourceIn, ResourceOut, False),
    "api.get_resource": ("Lire un matériel, une salle ou un lieu dédié", None, ResourceOut, False),
    "api.update_resource": ("Modifier un matériel, une salle ou un lieu dédié", ResourceUpdateIn, ResourceOut, False),
    "api.retire_resource": (
        "Retirer du service (refusé tant qu'un programme en cours ou un rendez-vous à venir l'utilise)",
        NoBodyIn,
        ResourceOut,
        False,
    ),
    "api.list_resource_bookings": (
        "Rendez-vous qui réservent ce matériel ou ce lieu (à venir par défaut, l'historique avec `from`)",
        None,
        ResourceBookingOut,
        True,
    ),
    "api.book_appointment": ("Réserver un créneau pour un patient", AppointmentIn, BookingOut, False),
    "api.check_series_booking": (
        "Vérifier une série de séances (chaque occurrence, ses conflits), sans rien enregistrer",
        SeriesIn,
        SeriesCheckOut,
        False,
    ),
    "api.check_pathway_schedule": (
        "Vérifier la programmation des étapes d'un parcours (créneau proposé, conflits), sans rien enregistrer",
        NoBodyIn,
        PathwayPlanOut,
        False,
    ),
    "api.schedule_pathway": (
        "Programmer les étapes d'un parcours : tout ou rien (409 nommant les conflits), ou seulement les libres",
        PathwayScheduleIn,
        PathwayBookedOut,
        False,
    ),
    "api.book_series": (
        "Réserver une série de séances : tout ou rien (409 nommant les conflits), ou seulement les libres",
        SeriesBookIn,
        SeriesBookedOut,
        False,
    ),
    "api.get_appointment": ("Lire un rendez-vous", None, AppointmentOut, False),
    "api.confirm_appointment": ("Confirmer la visite (IDEL)", NoBodyIn, AppointmentOut, False),
    "api.decline_appointment": ("Refuser la visite, avec la raison (IDEL)", ReasonIn, AppointmentOut, False),
    "api.check_in_appointment": ("Accueillir le patient (identité, lieu, téléphone)", CheckInIn, AppointmentOut, False),
    "api.save_appointment_checklist": (
        "Enregistrer la liste de vérification HAS, complète, avant la fin de la séance",
        ChecklistIn,
        AppointmentOut,
        False,
    ),
    "api.complete_appointment": (
        "Terminer la séance, après son début (liste de vérification enregistrée avant)",
        NoBodyIn,
        AppointmentOut,
        False,
    ),
    "api.degrade_appointment": ("Passer en mode dégradé (téléphone)", ReasonIn, AppointmentOut, False),
    "api.record_no_show": ("Noter l'absence du patient", NoBodyIn, AppointmentOut, False),
    "api.cancel_appointment": ("Annuler le rendez-vous", ReasonIn, AppointmentOut, False),
    "api.get_attendance": ("Présences de la séance (patient, accompagnant, professionnel)", None, AttendanceOut, False),
    "api.record_attendance": (
        "Noter les présences après le début de la séance (absence du patient, de l'accompagnant, du professionnel)",
        AttendanceIn,
        AttendanceOut,
        False,
    ),
    "api.get_video": ("Lien de visio de la séance, autour de son heure (participants)", None, VideoOut, False),
    "api.send_video_link": ("Envoyer au patient son lien de téléconsultation", NoBodyIn, VideoOut, False),
    "api.reassign_appointment": ("Réaffecter l'IDEL accompagnant", ReassignIn, AppointmentOut, False),
    "api.get_rituals": (
        "Rituels d'une séance de télésoin de kiné, et ce qui manque pour la terminer",
        None,
        RitualsOut,
        False,
    ),
    "api.record_rituals": (
        "Enregistrer les six rituels de la séance de télésoin (kiné qui la réalise, patient accueilli)",
        RitualsIn,
        RitualsOut,
        False,
    ),
    "api.list_session_incidents": ("Incidents d'une séance (participants, coordination)", None, IncidentOut, True),
    "api.record_incident": (
        "Déclarer un incident de la séance : technique, EI ou EIG (un EIG alerte la coordination)",
        IncidentIn,
        IncidentOut,
        False,
    ),
    "api.list_incidents": ("Incidents des séances de la CPTS, les EIG d'abord (coordination)", None, IncidentOut, True),
    "api.list_fees": ("Actes et rémunérations (les siens ; la CPTS pour la coordination)", None, FeeOut, True),
    "api.get_remote_share": (
        f"Part de télésoin (plafond de {percent(REMOTE_SHARE_LIMIT, places=0)}) d'un·e IDEL ou kiné",
        None,
        RemoteShareOut,
        False,
    ),
    "api.list_remote_share_overrides": (
        f"Dérogations de la coordination au plafond de {percent(REMOTE_SHARE_LIMIT, places=0)} de télésoin",
        None,
        ShareOverrideOut,
        True,
    ),
    "api.get_pharmacy_assistance": (
        "Téléconsultations assistées en officine d'un·e pharmacien·ne et leur rémunération (TLM) sur une année",
        None,
        PharmacyAssistanceOut,
        False,
    ),
    "api.get_declared_activity": (
        "Activité conventionnée déclarée d'un·e IDEL ou kiné, mois par mois, et celle de l'an dernier",
        None,
        ActivityOut,
        False,
    ),
    "api.declare_activity": (
        "Déclarer (ou corriger) l'activité conventionnée d'un mois (IDEL ou kiné, pour soi)",
        ActivityIn,
        DeclaredMonthOut,
        False,
    ),
    "api.list_tariffs": ("Tarifs et leurs versions", None, TariffOut, True),
    "api.create_tariff": ("Nouvelle version d'un tarif (administration)", TariffIn, TariffOut, False),
    "api.create_referral": (
        "Créer un adressage (brouillon, médecin généraliste), patient existant ou créé (409 si doublon possible)",
        ReferralIn,
        ReferralOut,
        False,
    ),
    "api.list_referrals": (
        "Adressages de l'appelant (écrits, reçus ; la CPTS pour la coordination)",
        None,
        ReferralOut,
        True,
    ),
    "api.get_referral": (
        "Lire un adressage : lettre, documents, besoins, consentement, historique",
        None,
        ReferralPageOut,
        False,
    ),
    "api.referral_candidates": (
        "Accompagnant·es libres à un créneau : l'IDEL du patient, puis par distance (coordination)",
        None,
        CandidatesOut,
        False,
    ),
    "api.update_referral": ("Modifier un brouillon d'adressage", ReferralUpdateIn, ReferralOut, False),
    "api.submit_referral": ("Envoyer l'adressage (consentement du patient)", SubmitIn, ReferralOut, False),
    "api.accept_referral": ("Accepter l'adressage (coordination)", NoBodyIn, ReferralOut, False),
    "api.reject_referral": ("Refuser l'adressage, avec la raison (coordination)", ReasonIn, ReferralOut, False),
    "api.schedule_referral": ("Programmer l'adressage dans un créneau (coordination)", ScheduleIn, ReferralOut, False),
    "api.cancel_referral": ("Annuler l'adressage", ReasonIn, ReferralOut, False),
    "api.add_referral_attachment": ("Joindre un document (PDF, PNG, JPEG)", AttachmentIn, AttachmentOut, False),
    "api.get_referral_attachment": ("Télécharger un document de l'adressage", None, None, False),
    "api.list_pathway_templates": ("Modèles de parcours (livrés et ceux de la CPTS)", None, TemplateOut, True),
    "api.copy_pathway_template": (
        "Copier un modèle de parcours dans la CPTS (administration)",
        TemplateCopyIn,
        TemplateOut,
        False,
    ),
    "api.replace_pathway_template_steps": (
        "Remplacer les étapes d'un modèle de la CPTS (administration)",
        TemplateStepsIn,
        TemplateOut,
        False,
    ),
    "api.list_pathways": ("Parcours d'un patient que l'appelant peut voir", None, PathwayOut, True),
    "api.start_pathway": ("Démarrer un parcours pour un patient", PathwayIn, PathwayOut, False),
    "api.get_pathway": ("Lire un parcours", None, PathwayOut, False),
    "api.skip_pathway_step": ("Sauter une étape, avec la raison", PathwayReasonIn, PathwayOut, False),
    "api.book_pathway_step": ("Lier une étape à un rendez-vous", StepBookingIn, PathwayOut, False),
    "api.complete_pathway_step": ("Marquer une étape réalisée", NoBodyIn, PathwayOut, False),
    "api.stop_pathway": ("Arrêter un parcours, avec la raison", PathwayReasonIn, PathwayOut, False),
    "api.assess_eligibility": (
        "Enregistrer la vérification d'éligibilité au télésoin (HAS)",
        EligibilityIn,
        EligibilityOut,
        False,
    ),
    "api.get_eligibility": ("Dernière vérification d'éligibilité d'une modalité", None, EligibilityOut, False),
    "api.create_teleexpertise": (
        "Demander une téléexpertise (pièces jointes en base64 ; 5e de l'année : confirmer qu'elle n'est pas payée)",
        TeleexpertiseIn,
        TeleexpertiseOut,
        False,
    ),
    "api.list_teleexpertise": (
        "Téléexpertises de l'appelant (demandées, reçues, de son pool ; la CPTS pour la coordination)",
        None,
        TeleexpertiseOut,
        True,
    ),
    "api.get_teleexpertise": ("Lire une demande de téléexpertise, et sa réponse", None, TeleexpertiseOut, False),
    "api.assign_teleexpertise": (
        "Prendre la demande (expert·e) ou l'attribuer à un·e expert·e (coordination)",
        AssignIn,
        TeleexpertiseOut,
        False,
    ),
    "api.start_teleexpertise": ("Commencer l'examen de la demande", NoBodyIn, TeleexpertiseOut, False),
    "api.decline_teleexpertise": ("Décliner la demande, avec la raison", DeclineIn, TeleexpertiseOut, False),
    "api.answer_teleexpertise": (
        "Répondre (brouillon ; `sign` le signe et l'envoie au demandeur et au médecin traitant)",
        AnswerIn,
        TeleexpertiseOut,
        False,
    ),
    "api.close_teleexpertise": ("Clôturer une demande répondue (demandeur)", NoBodyIn, TeleexpertiseOut, False),
    "api.get_teleexpertise_attachment": ("Télécharger une pièce jointe de la demande", None, None, False),
    "api.get_audit_chain": ("État de la chaîne du journal d'audit (administration)", None, AuditChainOut, False),
    "api.verify_audit_chain": (
        "Vérifier la chaîne du journal d'audit maintenant : les ruptures trouvées (administration)",
        NoBodyIn,
        VerificationOut,
        False,
    ),
    "api.list_outbox_messages": ("Envois de la CPTS (coordination, administration)", None, OutboxMessageOut, True),
    "api.get_outbox_status": (
        "Retard des envois de la CPTS : messages dus que le worker n'a pas pris, attente du plus ancien, alerte au-delà"
        " de HUB_OUTBOX_ALERT_MINUTES (le worker est en retard ou arrêté ; rien n'est perdu)",
        None,
        OutboxStatusOut,
        False,
    ),
    "api.get_outbox_message": ("Lire un envoi", None, OutboxMessageOut, False),
    "api.requeue_outbox_message": ("Renvoyer un envoi en échec définitif", NoBodyIn, OutboxMessageOut, False),
    "api.create_report": (
        "Commencer le compte rendu d'une séance (le brouillon existant s'il est commencé)",
        ReportStartIn,
        ReportOut,
        False,
    ),
    "api.get_report": ("Lire un compte rendu, avec ses envois", None, ReportOut, False),
    "api.get_my_session": (
        "« Ma séance » : les patients du jour demandé (`day`), sinon de la prochaine journée de séance de l'appelant",
        None,
        SessionDayOut,
        False,
    ),
    "api.list_report_recipients": (
        "Destinataires d'un compte rendu : délai de remise (fin de séance + délai du programme) et état de l'envoi",
        None,
        RecipientOut,
        True,
    ),
    "api.update_report": ("Modifier un brouillon de compte rendu", ReportUpdateIn, ReportOut, False),
    "api.sign_report": (
        "Signer le compte rendu (contenu figé) : son PDF et son CDA sont mis en forme peu après (`document_pending`),"
        " puis envoyés (`document_failed` : la mise en forme a échoué, la coordination est prévenue, elle est"
        " retentée)",
        NoBodyIn,
        ReportOut,
        False,
    ),
    "api.supersede_report": ("Corriger un compte rendu signé (nouvelle version)", NoBodyIn, ReportOut, False),
    "api.get_report_pdf": (
        "Télécharger le PDF du compte rendu signé (409 avec Retry-After tant que le document est en préparation)",
        None,
        None,
        False,
    ),
    "api.get_indicators": (
        "Indicateurs de la CPTS pour une année ou un mois (heure de Paris) et un programme, et leur mode de calcul",
        None,
        IndicatorsOut,
        False,
    ),
    "api.list_waiting": (
        "Liste d'attente de la CPTS (d'un programme avec `program_id`) : les plus urgents, puis les plus anciens",
        None,
        WaitingEntryOut,
        True,
    ),
    "api.add_waiting": (
        "Mettre un patient en liste d'attente d'un programme (ou un adressage accepté, avec `referral_id`)",
        WaitingIn,
        WaitingEntryOut,
        False,
    ),
    "api.get_waiting": ("Lire une inscription en liste d'attente", None, WaitingEntryOut, False),
    "api.withdraw_waiting": (
        "Retirer un patient de la liste d'attente (motif)",
        WaitingWithdrawIn,
        WaitingEntryOut,
        False,
    ),
    "api.list_freed_slots": (
        "Créneaux libérés à proposer, avec les patients en attente qui leur conviennent d'abord",
        None,
        FreedSlotOut,
        True,
    ),
    "api.offer_freed_slot": (
        "Proposer le créneau libéré à un patient en attente : le rendez-vous est pris (409 si un autre l'a déjà fait)",
        OfferIn,
        OfferOut,
        False,
    ),
    "api.get_desk": (
        "Le bureau de l'appelant : ce qu'il a à faire, compté (adressages, visites, comptes rendus, envois…)",
        None,
        DeskOut,
        False,
    ),
    "api.appointment_candidates": (
        "IDEL qui peuvent reprendre une visite, classées (distance, visites du mois, propositions en attente)",
        None,
        AppointmentCandidatesOut,
        False,
    ),
    "api.get_service_area": (
        "Ma zone d'intervention : communes desservies à domicile (codes INSEE) et jours travaillés (1 lundi … 7)",
        None,
        ServiceAreaOut,
        False,
    ),
    "api.list_gp_searches": (
        "Patients sans médecin traitant en attente, du plus fragile au moins fragile (coordination)",
        None,
        GpSearchListOut,
        False,
    ),
    "api.create_gp_search": (
        "Inscrire un patient sur la liste, avec son consentement et ses critères de fragilité",
        GpSearchIn,
        GpSearchDetailOut,
        False,
    ),
    "api.get_gp_search": (
        "Une inscription : fragilité, propositions, médecins qui acceptent de nouveaux patients",
        None,
        GpSearchDetailOut,
        False,
    ),
    "api.propose_gp": ("Proposer le patient à un médecin généraliste", ProposeIn, GpProposalOut, False),
    "api.withdraw_gp_search": (
        "Retirer le patient de la liste (consentement retiré, ou médecin trouvé par ailleurs)",
        GpSearchWithdrawIn,
        GpSearchDetailOut,
        False,
    ),
    "api.accept_gp_proposal": ("Accepter de devenir le médecin traitant (médecin)", NoBodyIn, GpProposalOut, False),
    "api.refuse_gp_proposal": ("Refuser la proposition, avec la raison (médecin)", RefuseIn, GpProposalOut, False),
    "api.get_gp_capacity": ("Combien de nouveaux patients médecin traitant j'accepte", None, CapacityOut, False),
    "api.put_gp_capacity": (
        "Déclarer combien de nouveaux patients médecin traitant j'accepte",
        CapacityIn,
        CapacityOut,
        False,
    ),
    "api.put_service_area": (
        "Déclarer ma zone d'intervention et mes jours travaillés",
        ServiceAreaIn,
        ServiceAreaOut,
        False,
    ),
}
# Requests sent as multipart/form-data rather than JSON.
MULTIPART = {"api.add_referral_attachment"}
# POST endpoints that change a resource rather than create one: they answer 200.
ANSWER_200 = {
    "api.cancel_program",
    "api.declare_activity",
    "api.retire_resource",
    "api.confirm_appointment",
    "api.decline_appointment",
    "api.check_in_appointment",
    "api.complete_appointment",
    "api.degrade_appointment",
    "api.record_no_show",
    "api.record_attendance",
    "api.send_video_link",
    "api.cancel_appointment",
    "api.reassign_appointment",
    "api.submit_referral",
    "api.accept_referral",
    "api.reject_referral",
    "api.schedule_referral",
    "api.cancel_referral",
    "api.skip_pathway_step",
    "api.book_pathway_step",
    "api.complete_pathway_step",
    "api.stop_pathway",
    "api.assign_teleexpertise",
    "api.start_teleexpertise",
    "api.decline_teleexpertise",
    "api.answer_teleexpertise",
    "api.close_teleexpertise",
    "api.requeue_outbox_message",
    "api.verify_audit_chain",
    "api.sign_report",
    "api.withdraw_consent",
    "api.withdraw_waiting",
    "api.offer_freed_slot",
    "api.withdraw_gp_search",
    "api.accept_gp_proposal",
    "api.refuse_gp_proposal",
}

# What the server accepts, as the handlers and their query schemas check it (hub/api, hub/schemas): a value the
# document allows is never refused for its shape.
ROW_ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
# A blank value counts as absent (hub.schemas.base.InputSchema).
BLANK = {"type": "string", "maxLength": 0}
DAY = {"type": "string", "format": "date", "pattern": DAY_IN_WINDOW}
DATE = {"anyOf": [DAY, BLANK]}
DAY_OR_INSTANT = {"anyOf": [DAY, {"type": "string", "format": "date-time", "pattern": DAY_IN_WINDOW}, BLANK]}
TARIFF_CODE = {"anyOf": [{"type": "string", "pattern": "^[A-Z][A-Z0-9]{1,9}$"}, BLANK]}


def _enum(values) -> dict:
    return {"type": "string", "enum": [str(v) for v in values]}


# endpoint → [(name, schema, required)]
QUERY_PARAMETERS: dict[str, list[tuple[str, dict, bool]]] = {
    "api.list_patients": [
        ("q", {"type": "string"}, False),
        ("birth_date", DAY, False),
    ],
    "api.list_professionals": [("q", {"type": "string"}, False), ("profession", _enum(Profession), False)],
    "api.create_patient": [("duplicates_checked", {"type": "boolean"}, False)],
    "api.get_my_session": [("day", DATE, False)],
    "api.list_slots": [("from", DAY_OR_INSTANT, False), ("to", DAY_OR_INSTANT, False)],
    "api.list_resource_bookings": [("from", DAY_OR_INSTANT, False), ("to", DAY_OR_INSTANT, False)],
    "api.list_fees": [
        ("professional_id", ROW_ID, False),
        ("from", DATE, False),
        ("to", DATE, False),
        ("code", TARIFF_CODE, False),
    ],
    "api.get_remote_share": [("year", {"type": "integer", "minimum": 2000, "maximum": 2100}, False)],
    "api.get_pharmacy_assistance": [("year", {"type": "integer", "minimum": 2000, "maximum": 2100}, False)],
    "api.list_tariffs": [("code", {"type": "string"}, False)],
    "api.get_indicators": [
        ("year", {"type": "integer", "minimum": 2000, "maximum": 2100}, False),
        ("month", {"type": "integer", "minimum": 1, "maximum": 12}, False),
        ("program_id", ROW_ID, False),
    ],
    "api.list_pathways": [("patient_id", ROW_ID, True)],
    "api.list_waiting": [("program_id", ROW_ID, False)],
    "api.get_eligibility": [("modality", _enum(Modality), False)],
    "api.referral_candidates": [("slot", ROW_ID, True), ("place_kind", _enum(PlaceKind), False)],
    "api.list_outbox_messages": [
        ("state", _enum(OutboxState), False),
        ("channel", {"type": "string", "maxLength": 20}, False),
    ],
}
# hub.api.appointments: 1 to 200 visible ASCII characters.
IDEMPOTENCY_KEY = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[\\x21-\\x7e]+$"}
HEADER_PARAMETERS = {"api.book_appointment": [("Idempotency-Key", IDEMPOTENCY_KEY, False)]}

PROBLEM = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "errors": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["type", "title", "status"],
}


# What a body must hold beyond its fields' own shapes: a consent is dated by its day or its instant.
# A waiting-list entry names a referral, or a patient, a program and an urgency. A series takes a count of sessions
# or an end day, never both.
_COUNT_OR_UNTIL = {"oneOf": [{"required": ["count"]}, {"required": ["until"]}]}
SCHEMA_RULES = {
    "ConsentIn": {"anyOf": [{"required": ["collected_on"]}, {"required": ["collected_at"]}]},
    "WaitingIn": {"anyOf": [{"required": ["referral_id"]}, {"required": ["patient_id", "program_id", "urgency"]}]},
    "SeriesIn": _COUNT_OR_UNTIL,
    "SeriesBookIn": _COUNT_OR_UNTIL,
}


# Statuses only some operations answer: creating a patient past the hourly duplicate checks (I5).
def _problem_responses(*statuses: int) -> dict:
    ref = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {str(status): {"description": "Erreur", "content": ref} for status in statuses}


# The duplicate check of a new patient is rate-limited per user.
RATE_LIMITED = {"api.create_patient", "api.create_referral"}


def _error_statuses(endpoint: str, *, has_body: bool) -> list[int]:
    statuses = [400, 401, 403, 404, 409, 415, 422]
    if has_body:
        statuses.append(413)  # MAX_CONTENT_LENGTH
    if endpoint in RATE_LIMITED:
        statuses.append(429)
    return sorted(statuses)


def _content(response: dict | None) -> dict:
    """JSON, or a file (a download with no schema)."""
    if response is None:
        return {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    return {"application/json": {"schema": response}}


def _operation(endpoint: str, method: str, path_params: list[str]) -> dict:
    summary, request_schema, response_schema, is_list = OPERATIONS[endpoint]
    response: dict[str, Any] | None = (
        {"$ref": f"#/components/schemas/{response_schema.__name__}"} if response_schema else None
    )
    if is_list:
        response = {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": response},
                "page": {"type": "integer"},
                "per_page": {"type": "integer"},
                "total": {"type": "integer"},
            },
        }
    status = "201" if method == "post" and endpoint not in ANSWER_200 else "200"
    # A path id beyond the row ids' range is a 404 (hub.app.RowIdConverter), like an unknown one.
    parameters = [{"name": p, "in": "path", "required": True, "schema": {**ROW_ID, "minimum": 0}} for p in path_params]
    parameters += [
        {"name": n, "in": "query", "required": r, "schema": t} for n, t, r in QUERY_PARAMETERS.get(endpoint, [])
    ]
    parameters += [
        {"name": n, "in": "header", "required": r, "schema": t} for n, t, r in HEADER_PARAMETERS.get(endpoint, [])
    ]
    if is_list:
        parameters += [
            {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
            {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
        ]
    operation = {
        "summary": summary,
        "operationId": endpoint.removeprefix("api."),
        "parameters": parameters,
        "responses": {
            status: {"description": "Succès", "content": _content(response)},
            **_problem_responses(*_error_statuses(endpoint, has_body=request_schema is not None)),
        },
    }
    if request_schema is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data" if endpoint in MULTIPART else "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{request_schema.__name__}"}
                }
            },
        }
    return operation


def _decimals(_converter, field: fields.Field, ret: dict, **_kwargs) -> dict:
    """Amounts are answered as strings (`"12.50"`: no binary rounding); Euros also reads a JSON number."""
    if not isinstance(field, fields.Decimal):
        return {}
    if not isinstance(field, Euros):
        return {"type": ["string", "null"] if field.allow_none else "string", "format": "decimal"}
    # Also `"12,50"` and `"1 234,50 €"`, which the document need not advertise.
    return {
        "type": ["string", "number"],
        "format": "decimal",
        "pattern": "^[0-9]{1,7}([.,][0-9]{1,2})?$",
        "minimum": 0,
        "exclusiveMaximum": 10_000_000,
        "multipleOf": 0.01,
    }


def _blank_is_absent(_converter, field: fields.Field, ret: dict, **_kwargs) -> dict:
    """Input strings are trimmed and a blank one counts as absent (hub.schemas.base): a required one needs text."""
    if isinstance(field, fields.String) and field.required and "pattern" not in ret:
        return {"pattern": "\\S"}
    return {}


@cache
def build_document(server_url: str) -> dict:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="Hub CPTS",
        version="1",
        openapi_version="3.1.0",
        plugins=[plugin],
        servers=[{"url": server_url}],
        components={"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        security=[{"bearer": []}],
    )
    for attribute_function in (_decimals, _blank_is_absent):
        plugin.converter.add_attribute_function(attribute_function)  # type: ignore[union-attr]
    spec.components.schema("Problem", PROBLEM)
    schemas = {s for _, req, res, _ in OPERATIONS.values() for s in (req, res) if s}
    for schema in sorted(schemas, key=lambda s: s.__name__):
        # The marshmallow plugin registers nested schemas on its own when it meets them.
        if schema.__name__ not in spec.components.schemas:
            spec.components.schema(schema.__name__, SCHEMA_RULES.get(schema.__name__), schema=schema)
    paths: dict[str, dict] = {}
    for rule in current_app.url_map.iter_rules():
        if rule.endpoint not in OPERATIONS:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule.endpoint, method.lower(), list(rule.arguments))
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@blueprint.get("/openapi.json")
@access(PUBLIC)
def openapi_document():
    return build_document("/api/v1")
